/*
 * Whole-file reads and crash-safe writes for the programs in node/.
 */
#ifndef BKV_NODE_FILEIO_H
#define BKV_NODE_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Read all of path into a new buffer (caller frees) of at most max bytes.
 * BKV_ERR_IO (errno text in err) if it cannot be read, BKV_ERR_LENGTH if it
 * is larger than max. Any thread.
 */
int bkv_file_read(const char *path, size_t max, uint8_t **out, size_t *out_len, char *err,
                  size_t err_cap);

/*
 * Write data to path atomically: a temporary file in the same directory with
 * the given mode, fsync, rename, fsync of the directory. With exclusive set,
 * an existing path is an error (BKV_ERR_INVALID) and is left alone.
 */
int bkv_file_write(const char *path, const uint8_t *data, size_t len, mode_t mode, int exclusive,
                   char *err, size_t err_cap);

#endif
