/*
 * runner.h — the test-vector runner shared by the host and QEMU test builds: runs a test case (a byte blob
 * written by firmware_bridge/c_firmware.py) through edgedrnn.h and emits the results as a byte stream.
 *
 * Test case (all little-endian, packed):
 *   0  u32 magic "LGTV"     4  u16 version (1)       6  u16 mode (0 run, 1 dump the LUTs)
 *   8  u32 total bytes     12  u16 layers           14  u16 input_size    16  u16 hidden
 *  18  u16 outputs (0 = no output layer)            20  u16 x_width (input_size or its padded width)
 *  22  u16 flags (bit0 saturate, bit1 emit the state)                    24  u16 burst latency λ   26 u16 reserved
 *  28  u32 steps           32  u32 image bytes
 *  36  image | out_weight int8 [outputs × hidden] | out_bias i32 [outputs] |
 *      steps × { u16 Θx, u16 Θh, u16 step flags (bit0 reset before the step), i16 x[x_width] }
 *
 * Results:
 *   header  u32 magic "LGTR", u32 max layers, max hidden, max input, max outputs, tick rate (Hz)
 *   mode 0, per completed step:
 *           u32 cycles, fired columns, non-zero deltas, ticks of edgedrnn_step, ticks of edgedrnn_output,
 *           per layer u32 fired, MAC cycles, activation cycles; i16 h[hidden]; i32 out[outputs];
 *           with flag bit1, then per layer: i16 x̂[I_l] (I_1 = padded input, later H), i16 ĥ[H], i16 h[H],
 *           i32 M_r|M_z|M_nx|M_nh [4H] (24-bit values)
 *   mode 1: i16 SIG(p) for p = −2048..2047, i16 TANH(p) for p = −1024..1023 (the RTL dumps' index ranges)
 *   trailer u32 magic "LGTE", u32 status (0, an edgedrnn_status, or RUNNER_E_* below), u32 steps completed
 */
#ifndef LEGLOOP_RUNNER_H
#define LEGLOOP_RUNNER_H

#include <stdint.h>

#define RUNNER_MAGIC_IN 0x5654474Cu     /* "LGTV" */
#define RUNNER_MAGIC_OUT 0x5254474Cu    /* "LGTR" */
#define RUNNER_MAGIC_END 0x4554474Cu    /* "LGTE" */
#define RUNNER_E_FORMAT 100u            /* bad magic, version or mode */
#define RUNNER_E_TRUNCATED 101u         /* the blob is shorter than its header says */

typedef void (*runner_emit_fn)(const uint8_t *data, uint32_t n);

/* Run the test case in `blob` (`size` bytes available); returns the trailer's status. */
uint32_t runner_run(const uint8_t *blob, uint32_t size, runner_emit_fn emit);

#endif /* LEGLOOP_RUNNER_H */
