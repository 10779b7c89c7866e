/*
 * edgedrnn_lut.h — the generated σ/tanh level tables (edgedrnn_lut.c, written by tools/gen_lut.py).
 *
 * Entry i holds the level (value / 16) for the pre-activation p = i − (SAT + 1); the first and last entries are
 * the saturated values, so a lookup clamps p to ±(SAT + 1) and never needs another range test.
 */
#ifndef LEGLOOP_EDGEDRNN_LUT_H
#define LEGLOOP_EDGEDRNN_LUT_H

#include <stdint.h>

#include "edgedrnn.h"

#define EDGEDRNN_SIG_ENTRIES (2 * (EDGEDRNN_SIG_SAT + 1) + 1)
#define EDGEDRNN_TANH_ENTRIES (2 * (EDGEDRNN_TANH_SAT + 1) + 1)

extern const uint8_t edgedrnn_sig_level[EDGEDRNN_SIG_ENTRIES];
extern const int8_t edgedrnn_tanh_level[EDGEDRNN_TANH_ENTRIES];

#endif /* LEGLOOP_EDGEDRNN_LUT_H */
