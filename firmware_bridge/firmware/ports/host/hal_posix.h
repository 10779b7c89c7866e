/*
 * hal_posix.h — set-up functions of the host (POSIX) port; the HAL itself is src/hal.h.
 */
#ifndef LEGLOOP_HAL_POSIX_H
#define LEGLOOP_HAL_POSIX_H

#include <stddef.h>

/* Open a serial device (e.g. /dev/ttyUSB0, or the slave end of someone else's pty) in raw 8N1 mode at `baud`.
 * Returns 0, or -1 with a message on stderr. */
int hal_posix_open_device(const char *path, long baud);

/* Create a pseudo-terminal pair, serve on its master end and write the slave's path (/dev/pts/N) to `name`.
 * The port keeps one handle on the slave open for its lifetime (in raw mode), so a client may close and reopen
 * the device without the master seeing a hang-up. Returns 0, or -1 with a message on stderr. */
int hal_posix_open_pty(char *name, size_t name_size);

#endif /* LEGLOOP_HAL_POSIX_H */
