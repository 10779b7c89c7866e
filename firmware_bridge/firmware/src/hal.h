/*
 * hal.h — the hardware layer a port implements: one byte in, one byte out, a tick counter. Porting the firmware
 * to a new board means implementing these three functions (plus the tick-rate constant) and calling app_run().
 *
 * Designed for a host-initiated request/response protocol (phase 2):
 *
 *     for (;;) {
 *         int c = hal_read_byte();             // sleeps (wfi / poll) until a byte arrives
 *         if (c < 0) break;                    // link gone (host port only)
 *         if (frame_parser_feed(&p, (uint8_t)c)) {
 *             uint32_t t0 = hal_ticks();
 *             ... edgedrnn_step(), edgedrnn_output() ...
 *             uint32_t dt = hal_ticks() - t0;  // unsigned difference: correct across one wrap
 *             ... hal_write_byte() the response ...
 *         }
 *     }
 *
 * hal_read_byte blocks instead of returning "none" so that idling costs nothing on every port without a fourth
 * "sleep" function: the board waits in `wfi` with the UART RX interrupt armed, the host process in poll(2). A
 * protocol that resynchronises on a delimiter (COBS, HDLC-style flags) needs no inter-byte timeout, so nothing
 * is lost by blocking. Output may be buffered by the port until the next hal_read_byte (the host port does this
 * to send a response in one write); a request/response loop always reads after it writes, so answers leave
 * promptly.
 */
#ifndef LEGLOOP_HAL_H
#define LEGLOOP_HAL_H

#include <stdint.h>

/* Next received byte (0..255), waiting as long as it takes without burning the CPU. −1 only when the link is
 * gone for good (the host port's device hung up or failed): the caller should return. */
int hal_read_byte(void);

/* Queue one byte for transmission (blocks only while the transmitter is full). */
void hal_write_byte(uint8_t byte);

/* Monotonic tick counter, wrapping mod 2^32, at hal_tick_hz (host: nanoseconds of CLOCK_MONOTONIC; QEMU board:
 * SysTick at the CPU clock, which under `qemu -icount shift=0` counts retired instructions deterministically). */
uint32_t hal_ticks(void);

/* Ticks per second of hal_ticks (a constant of the port). */
extern const uint32_t hal_tick_hz;

/* The portable firmware's main loop (src/app.c); a port's main() sets up its hardware and calls this. Returns
 * only when hal_read_byte reports the link gone. */
int app_run(void);

#endif /* LEGLOOP_HAL_H */
