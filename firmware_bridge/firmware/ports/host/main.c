/*
 * main.c — the host port's entry point: the firmware as a POSIX process on a tty.
 *
 *     legloop-fw-host [-b BAUD] [DEVICE]
 *
 * With DEVICE (a serial device, or the slave end of a pty someone else created, e.g. by socat) it serves on that
 * device in raw mode at BAUD (default 115200; irrelevant on a pty). Without DEVICE it creates a pseudo-terminal
 * itself and serves on the master end, the way QEMU's `-serial pty` does. Either way it prints one line
 * "device: PATH" on stdout once it is ready (PATH is the device a client should open), then runs the portable
 * main loop until the device hangs up (exit 0) or is killed (SIGTERM).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hal.h"
#include "hal_posix.h"

static int usage(const char *prog)
{
    fprintf(stderr, "usage: %s [-b BAUD] [DEVICE]\n", prog);
    return 2;
}

int main(int argc, char **argv)
{
    long baud = 115200;
    const char *device = NULL;
    char pty_name[128];
    int i;
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-b") == 0 && i + 1 < argc) {
            char *end;
            baud = strtol(argv[++i], &end, 10);
            if (*end != '\0')
                return usage(argv[0]);
        } else if (argv[i][0] == '-' || device != NULL) {
            return usage(argv[0]);
        } else {
            device = argv[i];
        }
    }
    if (device != NULL) {
        if (hal_posix_open_device(device, baud) != 0)
            return 1;
    } else {
        if (hal_posix_open_pty(pty_name, sizeof pty_name) != 0)
            return 1;
        device = pty_name;
    }
    printf("device: %s\n", device);
    fflush(stdout);
    return app_run();
}
