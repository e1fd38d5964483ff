/*
 * PIN files: a PIN (user or SO) is read from a file that only its owner can
 * read. Reentrant; any thread.
 */
#ifndef BKV_HSM_PINFILE_H
#define BKV_HSM_PINFILE_H

#include <stddef.h>
#include <stdint.h>

#define BKV_HSM_PIN_MAX 255 /* longest PIN accepted, in bytes */

/*
 * Read the PIN in the file at path (borrowed) into pin (capacity cap, at
 * least BKV_HSM_PIN_MAX bytes is enough) and set *pin_len. One trailing
 * newline is stripped. Refused with BKV_ERR_PERMISSION when the file is not
 * owned by this process's effective uid or its mode has any group/other bit
 * (the message says "chmod 600"); BKV_ERR_IO when it cannot be opened or is
 * not a regular file; BKV_ERR_LENGTH when the PIN is longer than cap;
 * BKV_ERR_INVALID when it is empty. On failure err (capacity err_cap, may be
 * 0) receives a sentence naming the file, never its content, and pin is
 * wiped. The caller wipes pin after use.
 */
int bkv_hsm_pin_read(const char *path, uint8_t *pin, size_t cap, size_t *pin_len, char *err,
                     size_t err_cap);

#endif
