/*
 * hal_posix.c — the HAL (src/hal.h) on a POSIX tty: a real serial device or a pseudo-terminal this process
 * creates. Reads block in read(2) (VMIN = 1), so an idle firmware costs no CPU; writes are buffered and leave
 * in one write(2) when the firmware next waits for input (or the buffer fills), so a response frame is one
 * syscall, not one per byte. Ticks are CLOCK_MONOTONIC nanoseconds.
 */
#define _XOPEN_SOURCE 600 /* posix_openpt, grantpt, unlockpt, ptsname */

#include "hal_posix.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "hal.h"

const uint32_t hal_tick_hz = 1000000000u;

static int g_fd = -1;       /* the end this process reads and writes */
static int g_keep_fd = -1;  /* pty mode: our own handle on the slave, so the master never sees a hang-up */
static uint8_t g_rx[256];
static size_t g_rx_len, g_rx_pos;
static uint8_t g_tx[512];
static size_t g_tx_len;

/* Raw 8N1: no line editing, echo, signals, CR/LF translation or flow control; read returns after 1 byte.
 * Spelled out instead of cfmakeraw(), which is not POSIX. */
static int make_raw(int fd, speed_t speed)
{
    struct termios t;
    if (tcgetattr(fd, &t) != 0)
        return -1;
    t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON | IXOFF | IXANY);
    t.c_oflag &= ~(tcflag_t)OPOST;
    t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB | CSTOPB);
    t.c_cflag |= (tcflag_t)(CS8 | CREAD | CLOCAL);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    if (speed != B0 && (cfsetispeed(&t, speed) != 0 || cfsetospeed(&t, speed) != 0))
        return -1;
    return tcsetattr(fd, TCSANOW, &t);
}

static speed_t baud_to_speed(long baud)
{
    switch (baud) {
    case 9600: return B9600;
    case 19200: return B19200;
    case 38400: return B38400;
    case 57600: return B57600;
    case 115200: return B115200;
    case 230400: return B230400;
#ifdef B460800
    case 460800: return B460800;
#endif
#ifdef B921600
    case 921600: return B921600;
#endif
#ifdef B1000000
    case 1000000: return B1000000;
#endif
#ifdef B2000000
    case 2000000: return B2000000;
#endif
#ifdef B3000000
    case 3000000: return B3000000;
#endif
    default: return B0;
    }
}

int hal_posix_open_device(const char *path, long baud)
{
    speed_t speed = baud_to_speed(baud);
    if (speed == B0) {
        fprintf(stderr, "unsupported baud rate %ld (9600..2000000, standard rates)\n", baud);
        return -1;
    }
    g_fd = open(path, O_RDWR | O_NOCTTY);
    if (g_fd < 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    if (make_raw(g_fd, speed) != 0) {
        fprintf(stderr, "%s: cannot set raw mode: %s\n", path, strerror(errno));
        close(g_fd);
        g_fd = -1;
        return -1;
    }
    return 0;
}

int hal_posix_open_pty(char *name, size_t name_size)
{
    const char *slave;
    g_fd = posix_openpt(O_RDWR | O_NOCTTY);
    if (g_fd < 0 || grantpt(g_fd) != 0 || unlockpt(g_fd) != 0 || (slave = ptsname(g_fd)) == NULL) {
        fprintf(stderr, "cannot create a pseudo-terminal: %s\n", strerror(errno));
        return -1;
    }
    if (strlen(slave) + 1 > name_size) {
        fprintf(stderr, "pty name too long: %s\n", slave);
        return -1;
    }
    memcpy(name, slave, strlen(slave) + 1);
    /* The line discipline sits on the slave side: it must be raw before a client writes, or the tty would echo
     * requests back into our input and translate CR/LF. */
    g_keep_fd = open(name, O_RDWR | O_NOCTTY);
    if (g_keep_fd < 0 || make_raw(g_keep_fd, B0) != 0) {
        fprintf(stderr, "%s: cannot open/configure the pty slave: %s\n", name, strerror(errno));
        return -1;
    }
    return 0;
}

static void flush_tx(void)
{
    size_t off = 0;
    while (off < g_tx_len) {
        ssize_t n = write(g_fd, g_tx + off, g_tx_len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break; /* the peer is gone: drop the output, the next read reports it */
        }
        off += (size_t)n;
    }
    g_tx_len = 0;
}

int hal_read_byte(void)
{
    if (g_rx_pos == g_rx_len) {
        ssize_t n;
        flush_tx();
        do {
            n = read(g_fd, g_rx, sizeof g_rx);
        } while (n < 0 && errno == EINTR);
        if (n <= 0)
            return -1; /* EOF (hang-up) or an error (EIO when a tty goes away) */
        g_rx_len = (size_t)n;
        g_rx_pos = 0;
    }
    return g_rx[g_rx_pos++];
}

void hal_write_byte(uint8_t byte)
{
    if (g_tx_len == sizeof g_tx)
        flush_tx();
    g_tx[g_tx_len++] = byte;
}

uint32_t hal_ticks(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    /* mod 2^32 by construction: unsigned arithmetic */
    return (uint32_t)((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
}
