/*
 * app.c — the portable firmware main loop, written only against hal.h.
 *
 * Phase 1 (this file now): a HAL check until the serial protocol exists. Every received byte b is answered with
 * b + 1 (mod 256) — not b itself, so a tty left in echo mode cannot fake an answer. Phase 2 replaces the loop
 * body with the protocol's frame parser driving the delta-GRU of edgedrnn.h (see the sketch in hal.h).
 */
#include "hal.h"

int app_run(void)
{
    for (;;) {
        int c = hal_read_byte();
        if (c < 0)
            return 0;
        hal_write_byte((uint8_t)(c + 1));
    }
}
