/*
 * Snapshot images and their descriptors.
 *
 * The payload BKV hands libraft as a snapshot is a descriptor of
 * BKV_IMAGE_DESC_LEN bytes, never the state itself:
 *
 *   [8]  magic "BKV-SNAP"
 *   [4]  format version (BKV_IMAGE_VERSION), big-endian
 *   [4]  zero
 *   [8]  applied index of the store in the image, big-endian
 *   [8]  image size in bytes, big-endian
 *   [32] SHA-256 of the image
 *
 * The image is a SQLite file written by bkv_store_snapshot, kept in the
 * node's image directory under the name <64 lowercase hex digits of its
 * SHA-256>.db, so a file is found, served and checked by its hash alone.
 * Nodes that lack an image fetch it out of band (consensus/transfer.h).
 *
 * Every function is reentrant and may be called from any thread; they only
 * touch the files they are given.
 */
#ifndef BKV_CONSENSUS_IMAGE_H
#define BKV_CONSENSUS_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define BKV_IMAGE_DESC_LEN 64
#define BKV_IMAGE_VERSION  1
#define BKV_IMAGE_NAME_LEN 67 /* 64 hex digits, ".db" */

struct bkv_image_desc {
    uint64_t index; /* the store's applied index in the image */
    uint64_t size;  /* bytes */
    uint8_t sha256[32];
};

void bkv_image_desc_encode(const struct bkv_image_desc *d, uint8_t out[static BKV_IMAGE_DESC_LEN]);

/* BKV_ERR_FORMAT unless p is exactly one descriptor of this version with size > 0. */
int bkv_image_desc_decode(const uint8_t *p, size_t len, struct bkv_image_desc *d);

/* The file name of the image with this hash (NUL-terminated, BKV_IMAGE_NAME_LEN chars). */
void bkv_image_name(const uint8_t sha256[static 32], char out[static BKV_IMAGE_NAME_LEN + 1]);

/* dir/name of the image with this hash: BKV_ERR_LENGTH if it does not fit in cap. */
int bkv_image_path(const char *dir, const uint8_t sha256[static 32], char *out, size_t cap);

/*
 * Size and SHA-256 of the file at path, read in fixed-size blocks (constant
 * memory, any size). BKV_ERR_IO (message in err) if it cannot be read.
 */
int bkv_image_digest(const char *path, uint64_t *size, uint8_t sha256[static 32], char *err,
                     size_t err_cap);

/*
 * Check that the file at path is the image d names: its size first (cheap),
 * then its SHA-256. BKV_ERR_FORMAT (message in err) if not, BKV_ERR_IO if it
 * cannot be read.
 */
int bkv_image_verify(const char *path, const struct bkv_image_desc *d, char *err, size_t err_cap);

/* fsync the file at path, then the directory that holds it. */
int bkv_image_sync(const char *path);

/* fsync the directory that holds path, so a rename into it is durable: BKV_OK or BKV_ERR_IO. */
int bkv_image_sync_dir(const char *path);

/*
 * Remove every image file in dir (names of 64 hex digits and ".db") except
 * the n_keep images whose hashes are in keep; other names are left alone.
 * Returns the number removed, or -1 if dir cannot be read.
 */
int bkv_image_gc(const char *dir, const uint8_t (*keep)[32], size_t n_keep);

#endif
