/*
 * Out-of-band transfer of snapshot images (image.h) between nodes.
 *
 * libraft 0.22 sends a snapshot as one InstallSnapshot message received into
 * one heap buffer, so BKV hands libraft a 64-byte descriptor and moves the
 * image itself over this separate TCP service, streamed through a fixed
 * buffer on both ends (constant memory, any size the disk holds).
 *
 * Protocol, one image per connection:
 *   client: "BKV-IMG1" || SHA-256 of the image (32 bytes)
 *   server: "BKV-IMG1" || size (8 bytes, big-endian) || the image's bytes,
 *           or size = 2^64 - 1 when it has no image of that hash.
 *
 * The server only ever opens <image_dir>/<hex of the 32 requested bytes>.db
 * (a regular file, no symlink): a request cannot name any other file. Like
 * libraft's own TCP transport it is unauthenticated and unencrypted: an image
 * holds what the Raft log holds, sealed records and counters, never a
 * secret in the clear. It serves at most BKV_TRANSFER_MAX_CONNS connections
 * at once (more wait in the listen backlog), each with I/O timeouts.
 *
 * The server runs on its own threads with blocking sockets and touches
 * nothing but the image directory's files; start and stop it from one
 * thread. bkv_transfer_fetch blocks its caller until done or the timeout.
 */
#ifndef BKV_CONSENSUS_TRANSFER_H
#define BKV_CONSENSUS_TRANSFER_H

#include <stddef.h>
#include <stdint.h>

#define BKV_TRANSFER_MAX_CONNS 4
#define BKV_TRANSFER_IO_MS     10000 /* a server gives up on a peer silent this long */

struct bkv_transfer_server;

/*
 * Listen on address (host:port, [v6]:port) and serve the images of
 * image_dir (copied) until bkv_transfer_stop. The socket is bound before
 * this returns: BKV_ERR_IO with the address and the reason in err if not,
 * BKV_ERR_INVALID for an address that does not parse. *out is owned by the
 * caller.
 */
int bkv_transfer_serve(const char *address, const char *image_dir, struct bkv_transfer_server **out,
                       char *err, size_t err_cap);

/* The port the server listens on (useful with port 0). */
unsigned bkv_transfer_port(const struct bkv_transfer_server *s);

/* Images served to the end so far. Any thread. */
unsigned long bkv_transfer_served(const struct bkv_transfer_server *s);

/* Stop serving: cut the connections in progress, join the threads, free s. */
void bkv_transfer_stop(struct bkv_transfer_server *s);

/*
 * Fetch the image of hash sha256 and size bytes from the server at address
 * into the new file dest (O_EXCL, mode 0600), within timeout_ms: streamed
 * through a 64 KiB buffer, the SHA-256 computed on the way, the file fsynced.
 * On any failure dest is removed and err says why: BKV_ERR_IO (cannot
 * connect, the peer has no such image, a short or late transfer, a local
 * write error; BKV_ERR_NOSPACE for a full disk), BKV_ERR_FORMAT (wrong size
 * announced, or the bytes do not hash to sha256).
 */
int bkv_transfer_fetch(const char *address, const uint8_t sha256[static 32], uint64_t size,
                       const char *dest, unsigned timeout_ms, char *err, size_t err_cap);

#endif
