/*
 * edgedrnn.h — the EdgeDRNN integer delta-GRU, bit-exact with hil/edgedrnn/kernel.py, plus its cycle model
 * and the output layer the ARM core runs after it.
 *
 * Portable C99, no dynamic allocation, no floating point: every buffer is sized at compile time by the
 * LEGLOOP_MAX_* macros below, and the weight image is read in place from a byte buffer the caller owns (in the
 * accelerator's DRAM layout, firmware_bridge/weight_image.py). Names follow the Python model: x̂ = x_hat,
 * ĥ = h_hat, accumulators M_r, M_z, M_nx, M_nh, Θx/Θh = theta_x/theta_h, λ = burst_latency.
 *
 * Arithmetic (shared/facts/edgedrnn.md, "Integer recipe"): Q8.8 activations in int16, Q1.7 weights in int8,
 * 24-bit accumulators in units of 2^-15 that wrap like the RTL (or clamp, with the saturating flag, like the
 * authors' Python), round half to even, inclusive thresholds, bias column only at the first step after reset.
 */
#ifndef LEGLOOP_EDGEDRNN_H
#define LEGLOOP_EDGEDRNN_H

#include <stdint.h>

/* ---------------------------------------------------------------------------------- compile-time capacity */

#ifndef LEGLOOP_MAX_LAYERS
#define LEGLOOP_MAX_LAYERS 4
#endif
#ifndef LEGLOOP_MAX_HIDDEN
#define LEGLOOP_MAX_HIDDEN 128
#endif
#ifndef LEGLOOP_MAX_INPUT /* layer-1 input width after padding to K */
#define LEGLOOP_MAX_INPUT 64
#endif
#ifndef LEGLOOP_MAX_OUTPUTS
#define LEGLOOP_MAX_OUTPUTS 8
#endif

#define EDGEDRNN_K 8             /* processing elements: H and the layer-1 input are multiples of K */
#define EDGEDRNN_RTL_MAX_LAYERS 4
#define EDGEDRNN_RTL_MAX_HIDDEN 1024
#define EDGEDRNN_THETA_MAX 511   /* Θ lives in a 10-bit signed register */
#define EDGEDRNN_SIG_SAT 879     /* SIG(p) = 256 for p > 879, 0 for p < -879 */
#define EDGEDRNN_TANH_SAT 530    /* TANH(p) = ±256 for |p| > 530 */

#if LEGLOOP_MAX_LAYERS < 1 || LEGLOOP_MAX_LAYERS > EDGEDRNN_RTL_MAX_LAYERS
#error "LEGLOOP_MAX_LAYERS must be 1..4 (the RTL's limit)"
#endif
#if LEGLOOP_MAX_HIDDEN < EDGEDRNN_K || LEGLOOP_MAX_HIDDEN % EDGEDRNN_K != 0 || LEGLOOP_MAX_HIDDEN > 1024
#error "LEGLOOP_MAX_HIDDEN must be a multiple of 8 in 8..1024"
#endif
#if LEGLOOP_MAX_INPUT < EDGEDRNN_K || LEGLOOP_MAX_INPUT % EDGEDRNN_K != 0
#error "LEGLOOP_MAX_INPUT must be a multiple of 8 (it is the padded width)"
#endif
#if LEGLOOP_MAX_OUTPUTS < 1
#error "LEGLOOP_MAX_OUTPUTS must be >= 1"
#endif

/* x̂ holds a layer's input: the padded network input for layer 1, the previous h for later layers. */
#define EDGEDRNN_MAX_WIDTH (LEGLOOP_MAX_INPUT > LEGLOOP_MAX_HIDDEN ? LEGLOOP_MAX_INPUT : LEGLOOP_MAX_HIDDEN)

/* ------------------------------------------------------------------------------------------------- types */

typedef enum {
    EDGEDRNN_OK = 0,
    EDGEDRNN_E_LAYERS = 1,     /* layers not in 1..LEGLOOP_MAX_LAYERS */
    EDGEDRNN_E_HIDDEN = 2,     /* hidden not a multiple of 8 in 8..LEGLOOP_MAX_HIDDEN */
    EDGEDRNN_E_INPUT = 3,      /* input size 0, its padded width > LEGLOOP_MAX_INPUT, or a step's x of wrong width */
    EDGEDRNN_E_IMAGE_SIZE = 4, /* image byte count differs from edgedrnn_image_bytes() */
    EDGEDRNN_E_THETA = 5,      /* Θ > 511 */
    EDGEDRNN_E_OUTPUTS = 6,    /* output count not in 1..LEGLOOP_MAX_OUTPUTS (or no output layer set) */
    EDGEDRNN_E_NULL = 7        /* a required pointer is NULL / the net is not initialised */
} edgedrnn_status;

/* Results of the last step (the Python model's stats block, kernel.py ST_*). */
typedef struct {
    uint32_t cycles;         /* Σ_l T_mac + T_act: modelled accelerator cycles */
    uint32_t fired_columns;  /* weight columns fetched, bias columns included (the test bench's `ncol`) */
    uint32_t nonzero_deltas; /* non-zero Δx and Δh entries, bias excluded: the numerator of 1 − sparsity */
    uint32_t layer_fired[LEGLOOP_MAX_LAYERS];
    uint32_t layer_mac_cycles[LEGLOOP_MAX_LAYERS];
    uint32_t layer_act_cycles[LEGLOOP_MAX_LAYERS];
} edgedrnn_stats;

typedef struct {
    /* geometry and the image (read in place, never copied) */
    const int8_t *image;
    uint32_t image_bytes;
    uint32_t layer_offset[LEGLOOP_MAX_LAYERS]; /* byte offset of each layer's bias column */
    uint16_t layers, input_size, input_padded, hidden;
    /* run-time settings */
    uint16_t theta_x, theta_h; /* Q8.8 LSB, 0..511 */
    uint16_t burst_latency;    /* λ: extra cycles per weight burst (0 = ideal stream) */
    uint8_t saturate;          /* 0: wrap like the RTL; 1: clamp like the authors' Python */
    uint8_t first;             /* 1 until the first step after reset: the bias column is pending */
    /* output layer (runs on the ARM core): int8 [O × H] row-major weights read in place, int32 bias copied */
    const int8_t *out_weight;
    int32_t out_bias[LEGLOOP_MAX_OUTPUTS];
    uint16_t n_outputs;
    /* per-layer state carried between steps */
    int16_t x_hat[LEGLOOP_MAX_LAYERS][EDGEDRNN_MAX_WIDTH];
    int16_t h_hat[LEGLOOP_MAX_LAYERS][LEGLOOP_MAX_HIDDEN];
    int16_t h[LEGLOOP_MAX_LAYERS][LEGLOOP_MAX_HIDDEN];
    /* M_r | M_z | M_nx | M_nh back to back (units 2^-15). Unsigned so the wrapping adds are defined C; only the
     * value mod 2^24 is meaningful (read through sext24), which is the RTL's 24-bit register. */
    uint32_t acc[LEGLOOP_MAX_LAYERS][4 * LEGLOOP_MAX_HIDDEN];
    edgedrnn_stats stats;
} edgedrnn_t;

/* The threshold governors of hil/edgedrnn/predictive.py run on the board. "split": the step runs one layer at a
 * time and, before each layer, the cheapest thresholds are priced with the cycle model so that the step fits
 * `budget` cycles (≤ 2 + 10 + 1 pricings per layer; layer 1: each also prices the later layers' estimate). "worst":
 * the whole step is priced before it runs with an upper bound and runs in one invocation (≤ 2 + 10 + 1 pricings of
 * the step). Integer only, no allocation; one state for both (edgedrnn_governor_start when the policy changes). */
typedef struct {
    uint32_t budget; /* cycles a step may take */
    /* what the last governed step did */
    uint16_t theta_x[LEGLOOP_MAX_LAYERS], theta_h[LEGLOOP_MAX_LAYERS]; /* per layer: the thresholds it ran with */
    uint32_t priced;    /* Σ of the layers' priced cycles (split: = the step's cycles; worst: ≥ them) */
    uint8_t raised;     /* some layer ran above the thresholds in force (net->theta_x/h, the floor) */
    uint8_t infeasible; /* split: some layer did not fit even at Θx = Θh = 511 (with the later layers' reserve);
                         * worst: the step's bound did not fit even at 511 */
    /* h of every layer one step before net->h (h_{t-2} while the step is priced): the estimate's slope */
    int16_t h_prev[LEGLOOP_MAX_LAYERS][LEGLOOP_MAX_HIDDEN];
    /* |Δ| per scan position (inputs, then hidden; the bias aside) of each layer, as priced */
    uint16_t row[LEGLOOP_MAX_LAYERS][EDGEDRNN_MAX_WIDTH + LEGLOOP_MAX_HIDDEN];
} edgedrnn_governor;

/* ---------------------------------------------------------------------------------------------------- API */

/* Bytes of a weight image: Σ_l 3H·(1 + I_l_padded + H); 0 if the geometry is invalid for this build. */
uint32_t edgedrnn_image_bytes(uint16_t layers, uint16_t input_size, uint16_t hidden);

/* Check the geometry against this build's capacity and the image size, point at the image, reset the state.
 * Θx = Θh = 0, wrapping arithmetic, λ = 0, no output layer. `input_size` is the unpadded network input. */
edgedrnn_status edgedrnn_init(edgedrnn_t *net, const uint8_t *image, uint32_t image_bytes, uint16_t layers,
                              uint16_t input_size, uint16_t hidden);

/* Zero x̂, ĥ, h and M_*; the next step fetches the bias column again. Settings are kept. */
void edgedrnn_reset(edgedrnn_t *net);

/* Θx, Θh in Q8.8 LSB (0..511); take effect at the next step. Nothing changes on error. */
edgedrnn_status edgedrnn_set_theta(edgedrnn_t *net, uint16_t theta_x, uint16_t theta_h);

/* Options of the Python model's constructor: saturating arithmetic and the per-burst DRAM latency λ. */
void edgedrnn_set_saturate(edgedrnn_t *net, int saturate);
void edgedrnn_set_burst_latency(edgedrnn_t *net, uint16_t burst_latency);

/* Output layer: weights int8 [n_outputs × H] row-major (Q1.7, read in place), bias int32 [n_outputs] in the MAC's
 * units 2^-15 (copied). */
edgedrnn_status edgedrnn_set_output(edgedrnn_t *net, const int8_t *weight, const int32_t *bias, uint16_t n_outputs);

/* One time step of all layers from the Q8.8 input x of width n (input_size, or input_padded with the padding
 * included). The last layer's h is edgedrnn_h(net); the step's cycles and counts are in net->stats. */
edgedrnn_status edgedrnn_step(edgedrnn_t *net, const int16_t *x, uint16_t n);

/* Start governing `net` against `budget` cycles from its current state: the estimate's history is taken as flat
 * (h_{t-2} := h_{t-1}; after edgedrnn_reset both are 0, as in the Python governor after reset). Call it after
 * every edgedrnn_reset / edgedrnn_init of a governed net, and when the governor is switched on. */
void edgedrnn_governor_start(edgedrnn_governor *gov, const edgedrnn_t *net, uint32_t budget);

/* edgedrnn_step under the split governor: layer by layer, each layer's (Θx, Θh) the smallest rung of the ladder
 * (Θh first from net->theta_h up to 511, then Θx from net->theta_x) whose exact price fits what is left of
 * gov->budget after a reserve for the later layers (their worst case at Θ = 511); layer 1 also keeps the later
 * layers' linear estimate within the budget. net->theta_x/h are the floor and are not changed. Bit-identical to
 * PredictiveGovernor(bound="split") through EdgeDRNNBackend (gain 1, slack 0, λ and saturation of the net). */
edgedrnn_status edgedrnn_step_governed(edgedrnn_t *net, edgedrnn_governor *gov, const int16_t *x, uint16_t n);

/* edgedrnn_step under the worst governor: the whole step priced before it runs with an upper bound (an input column
 * of layer l ≥ 2 counts as fired iff 256 + |x̂_l[i]| ≥ Θx: some |h| ≤ 256 could fire it; everything else exact),
 * then run in one invocation — no stop between layers — at the smallest rung (Θh first, then Θx) whose bound fits
 * gov->budget (bisection, ≤ 2 + 10 + 1 pricings of the step). RESULT.cycles ≤ budget unless gov->infeasible.
 * gov->theta_x/h[l] hold the same pair for every layer. Bit-identical to PredictiveGovernor(bound="worst") (fused
 * backend kernel; λ and saturation of the net). */
edgedrnn_status edgedrnn_step_governed_worst(edgedrnn_t *net, edgedrnn_governor *gov, const int16_t *x, uint16_t n);

/* The last layer's h (int16 [hidden], Q8.8) after the last step. */
const int16_t *edgedrnn_h(const edgedrnn_t *net);

/* Output layer on the last layer's h: out[o] = bias[o] + Σ_j w[o,j]·h[j], wrapping like an int32 MAC. Raw
 * accumulators in units 2^-15 (what backend_kernel computes before de-normalising to float). */
edgedrnn_status edgedrnn_output(const edgedrnn_t *net, int32_t *out);

/* The same, and *wrapped (if not NULL) = 1 when some exact sum did not fit int32 (RESULT's OUTPUT_WRAPPED). */
edgedrnn_status edgedrnn_output_checked(const edgedrnn_t *net, int32_t *out, uint8_t *wrapped);

/* Accumulator `index` (0..4H−1: M_r, M_z, M_nx, M_nh back to back) of `layer` as the RTL's 24-bit register
 * holds it (units 2^-15, in [−2^23, 2^23)): for state read-back and tests. */
int32_t edgedrnn_accumulator(const edgedrnn_t *net, uint16_t layer, uint32_t index);

/* Cycles of a step in which nothing fires (the scan floor plus activation stages): kernel.py floor_cycles. */
uint32_t edgedrnn_floor_cycles(const edgedrnn_t *net);

/* The activation LUTs of the recipe (index = Q8.8 pre-activation, any int32): multiples of 16 in Q8.8. */
int32_t edgedrnn_sig(int32_t p);
int32_t edgedrnn_tanh(int32_t p);

#endif /* LEGLOOP_EDGEDRNN_H */
