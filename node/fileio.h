/*
 * Whole-file reads and crash-safe writes for the programs in node/.
 *
 * A write never follows a symbolic link to write somewhere else: the data
 * goes to a temporary file with a random name, created exclusively
 * (O_CREAT|O_EXCL|O_NOFOLLOW) in the target's directory, and is then renamed
 * (or, for an exclusive write, hard-linked) onto the target name, which
 * replaces a symlink there rather than writing through it. A file can be
 * reserved before its content exists (bkv_file_new_open), so that a program
 * can check every output path before it does anything irreversible.
 *
 * Threads: any thread; a struct bkv_file_new belongs to one thread at a time.
 */
#ifndef BKV_NODE_FILEIO_H
#define BKV_NODE_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BKV_FILE_PATH_MAX 4096

/*
 * Read all of path into a new buffer (caller frees) of at most max bytes.
 * The file must be a regular file (a FIFO or device is refused without
 * blocking). BKV_ERR_IO (errno text in err) if it cannot be read or is not a
 * regular file, BKV_ERR_LENGTH if it is larger than max.
 */
int bkv_file_read(const char *path, size_t max, uint8_t **out, size_t *out_len, char *err,
                  size_t err_cap);

/*
 * A file being written. Fields are private except tmp (the temporary file's
 * path, for messages) and kept (see bkv_file_new_commit).
 */
struct bkv_file_new {
    int dfd, fd;
    int exclusive;
    int kept; /* 1: a failed commit left the complete content in tmp */
    mode_t mode;
    char path[BKV_FILE_PATH_MAX];
    char tmp[BKV_FILE_PATH_MAX];
    char name[256], tmp_name[256];
};

/*
 * Reserve path (borrowed): open its directory, create the temporary file
 * there (mode 0600 until commit), and with exclusive set refuse a path that
 * exists already, as anything, symlinks included (BKV_ERR_INVALID). On
 * success *n must be given to bkv_file_new_commit or bkv_file_new_abort.
 * BKV_ERR_IO (message in err) when the directory cannot be opened or the
 * temporary file cannot be created, BKV_ERR_INVALID for a path too long or
 * without a file name.
 */
int bkv_file_new_open(struct bkv_file_new *n, const char *path, mode_t mode, int exclusive,
                      char *err, size_t err_cap);

/*
 * Write data (borrowed) to the reserved file: write, set the mode, fsync,
 * then rename onto the path (or link it there if exclusive; BKV_ERR_INVALID
 * if the path appeared meanwhile), fsync the directory. Releases n on every
 * path. On failure n->kept tells whether the complete, synced content was
 * left in n->tmp (the failure came after the data was safe), so the caller
 * can tell the operator where it is; otherwise the temporary file is gone.
 */
int bkv_file_new_commit(struct bkv_file_new *n, const uint8_t *data, size_t len, char *err,
                        size_t err_cap);

/* Give up a reservation: remove the temporary file and release n. */
void bkv_file_new_abort(struct bkv_file_new *n);

/*
 * bkv_file_new_open and bkv_file_new_commit in one call. With exclusive set,
 * an existing path is an error (BKV_ERR_INVALID) and is left alone; without,
 * the path is replaced (a symlink there is replaced, never followed).
 */
int bkv_file_write(const char *path, const uint8_t *data, size_t len, mode_t mode, int exclusive,
                   char *err, size_t err_cap);

/*
 * Make this process undumpable and its core-file limit zero, so that no key
 * or PIN in its memory lands in a core file or can be read through ptrace by
 * another process of the same user. 1 on success, 0 with errno set.
 */
int bkv_no_core_dumps(void);

#endif
