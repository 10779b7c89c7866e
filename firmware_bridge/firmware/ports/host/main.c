/*
 * main.c — the host port's entry point: the firmware as a POSIX process on a tty.
 *
 *     legloop-fw-host [-b BAUD] [--preload IMAGE] [DEVICE]
 *
 * With DEVICE (a serial device, or the slave end of a pty someone else created, e.g. by socat) it serves on that
 * device in raw mode at BAUD (default 115200; irrelevant on a pty). Without DEVICE it creates a pseudo-terminal
 * itself and serves on the master end, the way QEMU's `-serial pty` does. Either way it prints one line
 * "device: PATH" on stdout once it is ready (PATH is the device a client should open), then runs the portable
 * main loop until the device hangs up (exit 0) or is killed (SIGTERM).
 *
 * --preload IMAGE puts a model image file into the image store before serving, the way QEMU's loader does on the
 * MPS2 port (proto.h): a LOAD_BEGIN of its size then needs no LOAD_CHUNK before LOAD_END.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "hal.h"
#include "hal_posix.h"

static int usage(const char *prog)
{
    fprintf(stderr, "usage: %s [-b BAUD] [--preload IMAGE] [DEVICE]\n", prog);
    return 2;
}

static int preload(const char *path)
{
    proto_image_store *s = &app_image_store;
    size_t n;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    n = fread(s->image, 1, sizeof s->image, f);
    if (n == sizeof s->image && fgetc(f) != EOF) {
        fprintf(stderr, "%s: larger than this build's image store (%lu bytes)\n", path, (unsigned long)sizeof s->image);
        fclose(f);
        return -1;
    }
    fclose(f);
    s->magic = PROTO_PRELOAD_MAGIC;
    s->bytes = (uint32_t)n;
    s->bytes_check = ~(uint32_t)n;
    return 0;
}

static uint32_t seed(void)
{
    struct timespec ts;
    uint32_t v = (uint32_t)getpid();
    FILE *f = fopen("/dev/urandom", "rb");
    clock_gettime(CLOCK_REALTIME, &ts);
    v = proto_mix32(v ^ (uint32_t)ts.tv_nsec ^ (uint32_t)ts.tv_sec);
    if (f != NULL) {
        uint32_t r = 0;
        if (fread(&r, sizeof r, 1, f) == 1)
            v ^= r;
        fclose(f);
    }
    return v;
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
        } else if (strcmp(argv[i], "--preload") == 0 && i + 1 < argc) {
            if (preload(argv[++i]) != 0)
                return 1;
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
    app_boot_seed = seed();
    printf("device: %s\n", device);
    fflush(stdout);
    return app_run();
}
