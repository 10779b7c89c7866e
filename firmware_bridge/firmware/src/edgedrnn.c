/*
 * edgedrnn.c — the EdgeDRNN integer delta-GRU step, its cycle model and the output layer (see edgedrnn.h).
 *
 * Mirrors hil/edgedrnn/kernel.py `_step` and `backend_kernel` line for line in meaning; the Python model is the
 * reference and the tests hold this file bit-identical to it (h, cycles, fired columns, non-zero deltas, output
 * accumulators). Differences are of form only:
 *  - the MAC of a fired column runs as soon as the delta encoder finds it (the Python collects the fired
 *    positions first). Same adds, same order, so the same result also in saturating mode;
 *  - the cycle model's recurrence runs online over the same ascending positions, so no position list is kept;
 *  - the wrapping accumulators are uint32 (defined overflow in C) read back through sext24 (the Python keeps
 *    int32 lanes and wraps to 24 bits once a step: the same value mod 2^24).
 * No signed overflow, no shift of a negative value (right shifts go through floor_shift), no floating point.
 */
#include "edgedrnn.h"

#include <stddef.h>

#include "edgedrnn_lut.h"

/* Cycle-model constants of the facts page (kernel.py C_E_*, C_S_*, MAC_TAIL, ACT_LOOP). */
#define C_E_FIRST 3u /* delta encoder → MAC delay: layer 1, later layers */
#define C_E_LATER 4u
#define C_S_FIRST 8u /* scan-floor overhead: layer 1, later layers */
#define C_S_LATER 10u
#define MAC_TAIL 6u  /* cycles from the last burst to the end of the MAC phase */
#define ACT_LOOP 5u  /* the activation stage handles K neurons per 5-cycle loop */

#define Q88_ONE 256
#define ACC_HALF 0x800000L /* 2^23: the 24-bit accumulator's range is [-2^23, 2^23) */

/* ------------------------------------------------------------------------------------------ integer helpers */

/* floor(v / 2^s) without right-shifting a negative value (implementation-defined in C99); GCC and clang turn
 * this into one arithmetic shift. */
static inline int32_t floor_shift(int32_t v, unsigned s)
{
    return v < 0 ? ~(~v >> s) : v >> s;
}

/* rhe(v, s): round-half-to-even of v / 2^s, branch-free as in kernel.py: below half rounds down, above up, at
 * half the quotient's LSB tips it to the even neighbour. |v| < 2^30 here, so the sum cannot overflow. */
static inline int32_t rhe(int32_t v, unsigned s)
{
    int32_t half_m1 = (int32_t)((UINT32_C(1) << (s - 1u)) - 1u);
    return floor_shift(v + half_m1 + (floor_shift(v, s) & 1), s);
}

/* Two's-complement wrap to 16 bits (the RTL's Q8.8 registers). */
static inline int32_t wrap16(int32_t v)
{
    return (int32_t)(((uint32_t)v + 0x8000u) & 0xFFFFu) - 0x8000;
}

static inline int32_t sat16(int32_t v)
{
    return v > 32767 ? 32767 : (v < -32768 ? -32768 : v);
}

static inline int32_t fit16(int32_t v, int sat)
{
    return sat ? sat16(v) : wrap16(v);
}

/* The 24-bit accumulator value held in the low bits of a uint32 lane. */
static inline int32_t sext24(uint32_t v)
{
    return (int32_t)((v + 0x800000u) & 0xFFFFFFu) - 0x800000;
}

/* uint32 → int32 modulo 2^32 without the implementation-defined conversion of an out-of-range value. */
static inline int32_t to_int32(uint32_t v)
{
    return v <= 0x7FFFFFFFu ? (int32_t)v : -(int32_t)(~v) - 1;
}

static inline int32_t abs32(int32_t v)
{
    return v < 0 ? -v : v;
}

/* ------------------------------------------------------------------------------------------------- LUTs */

int32_t edgedrnn_sig(int32_t p)
{
    const int32_t lim = EDGEDRNN_SIG_SAT + 1;
    int32_t i = p < -lim ? -lim : (p > lim ? lim : p);
    return 16 * (int32_t)edgedrnn_sig_level[i + lim];
}

int32_t edgedrnn_tanh(int32_t p)
{
    const int32_t lim = EDGEDRNN_TANH_SAT + 1;
    int32_t i = p < -lim ? -lim : (p > lim ? lim : p);
    return 16 * (int32_t)edgedrnn_tanh_level[i + lim];
}

/* ---------------------------------------------------------------------------------------------- geometry */

static uint16_t padded_k(uint16_t n)
{
    return (uint16_t)((n + EDGEDRNN_K - 1u) / EDGEDRNN_K * EDGEDRNN_K);
}

static edgedrnn_status check_geometry(uint16_t layers, uint16_t input_size, uint16_t hidden)
{
    if (layers < 1u || layers > LEGLOOP_MAX_LAYERS)
        return EDGEDRNN_E_LAYERS;
    if (hidden < EDGEDRNN_K || hidden % EDGEDRNN_K != 0u || hidden > LEGLOOP_MAX_HIDDEN)
        return EDGEDRNN_E_HIDDEN;
    if (input_size < 1u || input_size > LEGLOOP_MAX_INPUT)
        return EDGEDRNN_E_INPUT;
    return EDGEDRNN_OK;
}

static uint32_t layer_bytes(uint16_t inputs, uint16_t hidden)
{
    return 3u * hidden * (1u + (uint32_t)inputs + hidden);
}

uint32_t edgedrnn_image_bytes(uint16_t layers, uint16_t input_size, uint16_t hidden)
{
    uint32_t total;
    if (check_geometry(layers, input_size, hidden) != EDGEDRNN_OK)
        return 0;
    total = layer_bytes(padded_k(input_size), hidden);
    total += (uint32_t)(layers - 1u) * layer_bytes(hidden, hidden);
    return total;
}

edgedrnn_status edgedrnn_init(edgedrnn_t *net, const uint8_t *image, uint32_t image_bytes, uint16_t layers,
                              uint16_t input_size, uint16_t hidden)
{
    edgedrnn_status st;
    uint32_t off = 0;
    uint16_t l;
    if (net == NULL || image == NULL)
        return EDGEDRNN_E_NULL;
    net->image = NULL; /* stays unusable unless everything checks out */
    st = check_geometry(layers, input_size, hidden);
    if (st != EDGEDRNN_OK)
        return st;
    if (image_bytes != edgedrnn_image_bytes(layers, input_size, hidden))
        return EDGEDRNN_E_IMAGE_SIZE;
    net->image = (const int8_t *)(const void *)image; /* char types may alias: the bytes are read as int8 */
    net->image_bytes = image_bytes;
    net->layers = layers;
    net->input_size = input_size;
    net->input_padded = padded_k(input_size);
    net->hidden = hidden;
    for (l = 0; l < LEGLOOP_MAX_LAYERS; l++) {
        net->layer_offset[l] = off;
        if (l < layers)
            off += layer_bytes(l == 0 ? net->input_padded : hidden, hidden);
    }
    net->theta_x = 0;
    net->theta_h = 0;
    net->burst_latency = 0;
    net->saturate = 0;
    net->out_weight = NULL;
    net->n_outputs = 0;
    edgedrnn_reset(net);
    return EDGEDRNN_OK;
}

void edgedrnn_reset(edgedrnn_t *net)
{
    uint16_t l, i;
    for (l = 0; l < LEGLOOP_MAX_LAYERS; l++) {
        for (i = 0; i < EDGEDRNN_MAX_WIDTH; i++)
            net->x_hat[l][i] = 0;
        for (i = 0; i < LEGLOOP_MAX_HIDDEN; i++) {
            net->h_hat[l][i] = 0;
            net->h[l][i] = 0;
        }
        for (i = 0; i < 4u * LEGLOOP_MAX_HIDDEN; i++)
            net->acc[l][i] = 0;
    }
    {
        edgedrnn_stats zero = {0};
        net->stats = zero;
    }
    net->first = 1;
}

edgedrnn_status edgedrnn_set_theta(edgedrnn_t *net, uint16_t theta_x, uint16_t theta_h)
{
    if (theta_x > EDGEDRNN_THETA_MAX || theta_h > EDGEDRNN_THETA_MAX)
        return EDGEDRNN_E_THETA;
    net->theta_x = theta_x;
    net->theta_h = theta_h;
    return EDGEDRNN_OK;
}

void edgedrnn_set_saturate(edgedrnn_t *net, int saturate)
{
    net->saturate = saturate ? 1u : 0u;
}

void edgedrnn_set_burst_latency(edgedrnn_t *net, uint16_t burst_latency)
{
    net->burst_latency = burst_latency;
}

edgedrnn_status edgedrnn_set_output(edgedrnn_t *net, const int8_t *weight, const int32_t *bias, uint16_t n_outputs)
{
    uint16_t o;
    if (weight == NULL || bias == NULL)
        return EDGEDRNN_E_NULL;
    if (n_outputs < 1u || n_outputs > LEGLOOP_MAX_OUTPUTS)
        return EDGEDRNN_E_OUTPUTS;
    net->out_weight = weight;
    for (o = 0; o < n_outputs; o++)
        net->out_bias[o] = bias[o];
    net->n_outputs = n_outputs;
    return EDGEDRNN_OK;
}

const int16_t *edgedrnn_h(const edgedrnn_t *net)
{
    return net->h[net->layers - 1u];
}

int32_t edgedrnn_accumulator(const edgedrnn_t *net, uint16_t layer, uint32_t index)
{
    return sext24(net->acc[layer][index]);
}

/* ------------------------------------------------------------------------------------------- MAC columns */

/* acc[j] += d·w[j] for one weight column, mod 2^32 (the 24-bit register's value is its low 24 bits).
 * |d·w| ≤ 2^15·2^7, so the product itself never overflows. This loop is the whole cost of a step: n is a
 * multiple of K = 8 (every run is H, 2H or 3H long), so it is unrolled by 4 to share the loop overhead, which
 * GCC -O2 does not do by itself (6 → 4.5 instructions per MAC on the Cortex-M3). */
static void axpy_wrap(uint32_t *acc, const int8_t *w, uint32_t n, int32_t d)
{
    uint32_t j;
    for (j = 0; j < n; j += 4u) {
        acc[j] += (uint32_t)(d * (int32_t)w[j]);
        acc[j + 1u] += (uint32_t)(d * (int32_t)w[j + 1u]);
        acc[j + 2u] += (uint32_t)(d * (int32_t)w[j + 2u]);
        acc[j + 3u] += (uint32_t)(d * (int32_t)w[j + 3u]);
    }
}

/* The saturating mode clamps to 24 bits after every add (order = scan order, as kernel.py `_axpy_sat`). */
static void axpy_sat(uint32_t *acc, const int8_t *w, uint32_t n, int32_t d)
{
    uint32_t j;
    for (j = 0; j < n; j++) {
        int32_t a = sext24(acc[j]) + d * (int32_t)w[j];
        a = a < -ACC_HALF ? -ACC_HALF : (a > ACC_HALF - 1 ? ACC_HALF - 1 : a);
        acc[j] = (uint32_t)a;
    }
}

/* One fired column: an input (or bias) column's 3H rows land on M_r|M_z|M_nx in one run, a hidden column's on
 * M_r|M_z, then M_nh (acc is [r, z, nx, nh] back to back). */
static void mac_column(uint32_t *acc, const int8_t *col, uint32_t H, int32_t d, int hidden_col, int sat)
{
    if (sat) {
        if (hidden_col) {
            axpy_sat(acc, col, 2u * H, d);
            axpy_sat(acc + 3u * H, col + 2u * H, H, d);
        } else {
            axpy_sat(acc, col, 3u * H, d);
        }
    } else if (hidden_col) {
        axpy_wrap(acc, col, 2u * H, d);
        axpy_wrap(acc + 3u * H, col + 2u * H, H, d);
    } else {
        axpy_wrap(acc, col, 3u * H, d);
    }
}

/* ----------------------------------------------------------------------------------------- cycle model */

/* The MAC phase's burst recurrence over ascending fired scan positions p_k (kernel.py mac_phase_cycles):
 * f = max(p_k + c_e, f) + B + λ, starting from f = −∞; T_mac = max(f + 6, S + c_s), or S + c_s if none fired. */
typedef struct {
    uint32_t f;
    uint32_t n;
    uint32_t c_e, beats_lam;
} mac_timer;

static inline void mac_timer_fire(mac_timer *t, uint32_t pos)
{
    uint32_t start = pos + t->c_e;
    if (t->n > 0u && t->f > start)
        start = t->f;
    t->f = start + t->beats_lam;
    t->n++;
}

static uint32_t mac_timer_end(const mac_timer *t, uint32_t scan, uint32_t c_s)
{
    uint32_t floor = scan + c_s;
    if (t->n == 0u)
        return floor;
    return t->f + MAC_TAIL > floor ? t->f + MAC_TAIL : floor;
}

uint32_t edgedrnn_floor_cycles(const edgedrnn_t *net)
{
    uint32_t total = 0;
    uint16_t l;
    for (l = 0; l < net->layers; l++) {
        uint32_t inputs = l == 0 ? net->input_padded : net->hidden;
        total += 1u + inputs + net->hidden + (l == 0 ? C_S_FIRST : C_S_LATER);
        total += ACT_LOOP * (net->hidden / EDGEDRNN_K + 1u);
    }
    return total;
}

/* ---------------------------------------------------------------------------------------------- one step */

/* σ/tanh stage for one layer: accumulators → new h (in place: reads h_{t−1} first). */
static void activate(const uint32_t *acc, int16_t *h, uint32_t H, int sat)
{
    const uint32_t *a_r = acc, *a_z = acc + H, *a_nx = acc + 2u * H, *a_nh = acc + 3u * H;
    uint32_t j;
    for (j = 0; j < H; j++) {
        int32_t r = edgedrnn_sig(fit16(rhe(sext24(a_r[j]), 7), sat));
        int32_t z = edgedrnn_sig(fit16(rhe(sext24(a_z[j]), 7), sat));
        int32_t pre_nh = fit16(rhe(sext24(a_nh[j]), 7), sat);
        /* |2·M_nx| < 2^24 and |r·pre_nh| ≤ 2^8·2^15: no overflow */
        int32_t n = edgedrnn_tanh(fit16(rhe(2 * sext24(a_nx[j]) + r * pre_nh, 8), sat));
        /* n, z are multiples of 16 in [−256, 256] and |h| ≤ 256, so h stays in [−256, 256]: no wrap needed */
        int32_t hn = rhe((Q88_ONE - z) * n, 8) + rhe(z * (int32_t)h[j], 8);
        h[j] = (int16_t)hn;
    }
}

/* One layer of a step at (th_x, th_h): delta encoder, MAC, activation, cycle model (net->stats.layer_*). Layer 1
 * reads the network input xin of n_avail values (zero beyond), later layers the previous layer's new h. Returns
 * the layer's cycles (T_mac + T_act). */
static uint32_t run_layer(edgedrnn_t *net, uint16_t l, const int16_t *xin, uint32_t n_avail, int32_t th_x,
                          int32_t th_h, int first)
{
    const uint32_t H = net->hidden;
    const uint32_t H3 = 3u * H;
    const int sat = net->saturate;
    const uint32_t I = l == 0 ? net->input_padded : H;
    const int8_t *base = net->image + net->layer_offset[l];
    int16_t *x_hat = net->x_hat[l];
    int16_t *h_hat = net->h_hat[l];
    int16_t *h_cur = net->h[l];
    uint32_t *acc = net->acc[l];
    mac_timer timer;
    uint32_t i, mac, act;
    timer.f = 0;
    timer.n = 0;
    timer.c_e = l == 0 ? C_E_FIRST : C_E_LATER;
    timer.beats_lam = H3 / EDGEDRNN_K + net->burst_latency;
    /* delta encoder, in scan order: bias (position 0), inputs (1..I), hidden (I+1..I+H) */
    if (first) {
        mac_column(acc, base, H, Q88_ONE, 0, sat);
        mac_timer_fire(&timer, 0);
    }
    for (i = 0; i < I; i++) {
        int32_t xi = i < n_avail ? (int32_t)xin[i] : 0;
        int32_t d = fit16(xi - (int32_t)x_hat[i], sat);
        if (d != 0 && abs32(d) >= th_x) { /* inclusive threshold; zero never fires */
            x_hat[i] = (int16_t)xi;
            mac_column(acc, base + (1u + i) * H3, H, d, 0, sat);
            mac_timer_fire(&timer, 1u + i);
        }
    }
    for (i = 0; i < H; i++) {
        int32_t d = fit16((int32_t)h_cur[i] - (int32_t)h_hat[i], sat);
        if (d != 0 && abs32(d) >= th_h) {
            h_hat[i] = h_cur[i];
            mac_column(acc, base + (1u + I + i) * H3, H, d, 1, sat);
            mac_timer_fire(&timer, 1u + I + i);
        }
    }
    activate(acc, h_cur, H, sat);
    /* cycle model */
    mac = mac_timer_end(&timer, 1u + I + H, l == 0 ? C_S_FIRST : C_S_LATER);
    act = ACT_LOOP * (H / EDGEDRNN_K + 1u);
    net->stats.layer_fired[l] = timer.n;
    net->stats.layer_mac_cycles[l] = mac;
    net->stats.layer_act_cycles[l] = act;
    return mac + act;
}

/* After the last layer: the step's totals (from the per-layer stats) and the bias column no longer pending. */
static void finish_step(edgedrnn_t *net, uint32_t total, int first)
{
    uint32_t fired_total = 0, deltas = 0;
    uint16_t l;
    for (l = 0; l < net->layers; l++) {
        uint32_t n = net->stats.layer_fired[l];
        fired_total += n;
        deltas += first ? n - 1u : n;
    }
    net->first = 0;
    net->stats.cycles = total;
    net->stats.fired_columns = fired_total;
    net->stats.nonzero_deltas = deltas;
}

edgedrnn_status edgedrnn_step(edgedrnn_t *net, const int16_t *x, uint16_t n)
{
    const int first = net->first;
    uint32_t total = 0;
    uint16_t l;
    if (net->image == NULL || x == NULL)
        return EDGEDRNN_E_NULL;
    if (n != net->input_size && n != net->input_padded)
        return EDGEDRNN_E_INPUT;
    for (l = 0; l < net->layers; l++) {
        /* layer 1 reads the network input (zero beyond n), later layers the previous layer's new h */
        if (l == 0)
            total += run_layer(net, 0, x, n, net->theta_x, net->theta_h, first);
        else
            total += run_layer(net, l, net->h[l - 1u], net->hidden, net->theta_x, net->theta_h, first);
    }
    finish_step(net, total, first);
    return EDGEDRNN_OK;
}

/* ------------------------------------------------------------------------------------ split governor */

#define GOV_R_TOP (2 * EDGEDRNN_THETA_MAX) /* the ladder's last rung: Θx = Θh = 511 */
#define GOV_H_MAX Q88_ONE                  /* |h| ≤ 1.0 in Q8.8 */

void edgedrnn_governor_start(edgedrnn_governor *gov, const edgedrnn_t *net, uint32_t budget)
{
    uint16_t l, j;
    gov->budget = budget;
    for (l = 0; l < LEGLOOP_MAX_LAYERS; l++) {
        gov->theta_x[l] = net->theta_x;
        gov->theta_h[l] = net->theta_h;
        for (j = 0; j < LEGLOOP_MAX_HIDDEN; j++)
            gov->h_prev[l][j] = net->h[l][j];
    }
    gov->priced = 0;
    gov->raised = 0;
    gov->infeasible = 0;
}

/* Rung r of the ladder: Θh rises first from its floor to 511, then Θx from its floor (predictive.py `_rung`). */
static int32_t rung_x(const edgedrnn_t *net, int32_t r)
{
    int32_t bx = net->theta_x;
    return r - EDGEDRNN_THETA_MAX > bx ? r - EDGEDRNN_THETA_MAX : bx;
}

static int32_t rung_h(const edgedrnn_t *net, int32_t r)
{
    int32_t bh = net->theta_h;
    int32_t v = r > bh ? r : bh;
    return v < EDGEDRNN_THETA_MAX ? v : EDGEDRNN_THETA_MAX;
}

/* Cycles of layer l if its priced |Δ| row fires at (th_x, th_h) (predictive.py `_price_layer`). */
static uint32_t price_layer(const edgedrnn_t *net, const edgedrnn_governor *gov, uint16_t l, int first,
                            int32_t th_x, int32_t th_h)
{
    const uint32_t H = net->hidden;
    const uint32_t I = l == 0 ? net->input_padded : H;
    const uint16_t *row = gov->row[l];
    mac_timer timer;
    uint32_t i;
    timer.f = 0;
    timer.n = 0;
    timer.c_e = l == 0 ? C_E_FIRST : C_E_LATER;
    timer.beats_lam = 3u * H / EDGEDRNN_K + net->burst_latency;
    if (first)
        mac_timer_fire(&timer, 0);
    for (i = 0; i < I; i++) {
        int32_t d = row[i];
        if (d != 0 && d >= th_x)
            mac_timer_fire(&timer, 1u + i);
    }
    for (i = 0; i < H; i++) {
        int32_t d = row[I + i];
        if (d != 0 && d >= th_h)
            mac_timer_fire(&timer, 1u + I + i);
    }
    return mac_timer_end(&timer, 1u + I + H, l == 0 ? C_S_FIRST : C_S_LATER) + ACT_LOOP * (H / EDGEDRNN_K + 1u);
}

/* The most layer l ≥ 2 can cost at Θx = Θh = 511 whatever its input turns out to be: an input column may fire only
 * if |h| ≤ 256 can be ≥ 511 away from x̂; the hidden part exactly (predictive.py `_price_worst_at_max`). */
static uint32_t price_worst_at_max(const edgedrnn_t *net, uint16_t l, int first)
{
    const uint32_t H = net->hidden;
    const int sat = net->saturate;
    mac_timer timer;
    uint32_t i;
    timer.f = 0;
    timer.n = 0;
    timer.c_e = C_E_LATER;
    timer.beats_lam = 3u * H / EDGEDRNN_K + net->burst_latency;
    if (first)
        mac_timer_fire(&timer, 0);
    for (i = 0; i < H; i++)
        if (GOV_H_MAX + abs32(net->x_hat[l][i]) >= EDGEDRNN_THETA_MAX)
            mac_timer_fire(&timer, 1u + i);
    for (i = 0; i < H; i++) {
        int32_t d = fit16((int32_t)net->h[l][i] - (int32_t)net->h_hat[l][i], sat);
        if (d != 0 && abs32(d) >= EDGEDRNN_THETA_MAX)
            mac_timer_fire(&timer, 1u + H + i);
    }
    return mac_timer_end(&timer, 1u + 2u * H, C_S_LATER) + ACT_LOOP * (H / EDGEDRNN_K + 1u);
}

/* Does rung r fit layer l into what is left (predictive.py `_split_fits`)? Layer 1 also keeps the later layers'
 * estimated price in view, so that a burst is shared rather than all left to the last layer. */
static int split_fits(const edgedrnn_t *net, const edgedrnn_governor *gov, uint16_t l, int first, int32_t r,
                      uint32_t used, uint32_t reserve)
{
    int32_t tx = rung_x(net, r), th = rung_h(net, r);
    uint32_t c = price_layer(net, gov, l, first, tx, th);
    uint16_t k;
    if (used + c + reserve > gov->budget)
        return 0;
    if (l == 0) {
        for (k = 1; k < net->layers; k++)
            c += price_layer(net, gov, k, first, tx, th);
        return c <= gov->budget;
    }
    return 1;
}

edgedrnn_status edgedrnn_step_governed(edgedrnn_t *net, edgedrnn_governor *gov, const int16_t *x, uint16_t n)
{
    const uint32_t H = net->hidden;
    const int sat = net->saturate;
    const int first = net->first;
    const int32_t bx = net->theta_x, bh = net->theta_h;
    const int32_t lo = bx < bh ? bx : bh;
    uint32_t used = 0, priced = 0;
    uint8_t raised = 0, infeasible = 0;
    uint16_t l, m;
    uint32_t i;
    if (net->image == NULL || x == NULL || gov == NULL)
        return EDGEDRNN_E_NULL;
    if (n != net->input_size && n != net->input_padded)
        return EDGEDRNN_E_INPUT;
    /* Priced |Δ| rows before the step (predictive.py `_fill_rows`): layer 1 and every hidden part exact, the input
     * part of later layers extrapolated from the previous layer's last two h (gain 1, slack 0). */
    for (l = 0; l < net->layers; l++) {
        uint16_t *row = gov->row[l];
        const uint32_t I = l == 0 ? net->input_padded : H;
        for (i = 0; i < I; i++) {
            int32_t v;
            if (l == 0) {
                v = i < n ? (int32_t)x[i] : 0;
            } else {
                int32_t prev = net->h[l - 1u][i];
                v = prev + (prev - (int32_t)gov->h_prev[l - 1u][i]);
                v = v < -GOV_H_MAX ? -GOV_H_MAX : (v > GOV_H_MAX ? GOV_H_MAX : v);
            }
            row[i] = (uint16_t)abs32(fit16(v - (int32_t)net->x_hat[l][i], sat));
        }
        for (i = 0; i < H; i++)
            row[I + i] = (uint16_t)abs32(fit16((int32_t)net->h[l][i] - (int32_t)net->h_hat[l][i], sat));
    }
    for (l = 0; l < net->layers; l++) {
        uint32_t reserve = 0, c;
        int32_t b, tx, th;
        for (m = (uint16_t)(l + 1u); m < net->layers; m++)
            reserve += price_worst_at_max(net, m, first);
        if (l > 0) /* the previous layer has run: this layer's input part is known exactly */
            for (i = 0; i < H; i++)
                gov->row[l][i] =
                    (uint16_t)abs32(fit16((int32_t)net->h[l - 1u][i] - (int32_t)net->x_hat[l][i], sat));
        /* the smallest rung that fits (cost is non-increasing in r): the floor, the top, or a bisection between */
        if (split_fits(net, gov, l, first, lo, used, reserve)) {
            b = lo;
        } else if (!split_fits(net, gov, l, first, GOV_R_TOP, used, reserve)) {
            b = GOV_R_TOP;
        } else {
            int32_t a = lo;
            b = GOV_R_TOP;
            while (b - a > 1) { /* split_fits(a) is false, split_fits(b) true: ≤ 10 halvings of 1..1022 */
                int32_t mid = (a + b) / 2;
                if (split_fits(net, gov, l, first, mid, used, reserve))
                    b = mid;
                else
                    a = mid;
            }
        }
        tx = rung_x(net, b);
        th = rung_h(net, b);
        c = price_layer(net, gov, l, first, tx, th);
        if (used + c + reserve > gov->budget)
            infeasible = 1;
        if (tx != bx || th != bh)
            raised = 1;
        gov->theta_x[l] = (uint16_t)tx;
        gov->theta_h[l] = (uint16_t)th;
        priced += c;
        /* the estimate's history: this layer's h_{t-1} becomes h_{t-2} once the layer has run */
        for (i = 0; i < H; i++)
            gov->h_prev[l][i] = net->h[l][i];
        if (l == 0)
            used += run_layer(net, 0, x, n, tx, th, first);
        else
            used += run_layer(net, l, net->h[l - 1u], H, tx, th, first);
    }
    finish_step(net, used, first);
    gov->priced = priced;
    gov->raised = raised;
    gov->infeasible = infeasible;
    return EDGEDRNN_OK;
}

/* ------------------------------------------------------------------------------------ worst governor */

/* Cycles of the whole step if every layer's priced |Δ| row fires at (th_x, th_h) (predictive.py `_price`). */
static uint32_t price_step(const edgedrnn_t *net, const edgedrnn_governor *gov, int first, int32_t th_x,
                           int32_t th_h)
{
    uint32_t total = 0;
    uint16_t l;
    for (l = 0; l < net->layers; l++)
        total += price_layer(net, gov, l, first, th_x, th_h);
    return total;
}

edgedrnn_status edgedrnn_step_governed_worst(edgedrnn_t *net, edgedrnn_governor *gov, const int16_t *x, uint16_t n)
{
    const uint32_t H = net->hidden;
    const int sat = net->saturate;
    const int first = net->first;
    const int32_t bx = net->theta_x, bh = net->theta_h;
    const int32_t lo = bx < bh ? bx : bh;
    uint32_t priced, used = 0;
    uint8_t infeasible = 0;
    int32_t r = lo, tx, th;
    uint16_t l;
    uint32_t i;
    if (net->image == NULL || x == NULL || gov == NULL)
        return EDGEDRNN_E_NULL;
    if (n != net->input_size && n != net->input_padded)
        return EDGEDRNN_E_INPUT;
    /* Priced |Δ| rows before the step (predictive.py `_fill_rows`, bound "worst"): layer 1 and every hidden part
     * exact; input i of a later layer as 256 + |x̂_l[i]| (≤ 33024: fits the row), i.e. it fires iff some h with
     * |h| ≤ 256 can be ≥ Θx away from x̂ — the input part's worst case. */
    for (l = 0; l < net->layers; l++) {
        uint16_t *row = gov->row[l];
        const uint32_t I = l == 0 ? net->input_padded : H;
        for (i = 0; i < I; i++) {
            if (l == 0) {
                int32_t v = i < n ? (int32_t)x[i] : 0;
                row[i] = (uint16_t)abs32(fit16(v - (int32_t)net->x_hat[0][i], sat));
            } else {
                row[i] = (uint16_t)(GOV_H_MAX + abs32(net->x_hat[l][i]));
            }
        }
        for (i = 0; i < H; i++)
            row[I + i] = (uint16_t)abs32(fit16((int32_t)net->h[l][i] - (int32_t)net->h_hat[l][i], sat));
    }
    /* The smallest rung whose bound fits (the bound is non-increasing in r; predictive.py `choose`): the floor, or
     * none if not even the top fits (then the top), or a bisection between (≤ 10 pricings). */
    priced = price_step(net, gov, first, bx, bh);
    if (priced > gov->budget) {
        uint32_t top = price_step(net, gov, first, EDGEDRNN_THETA_MAX, EDGEDRNN_THETA_MAX);
        if (top > gov->budget) {
            r = GOV_R_TOP;
            infeasible = 1;
        } else {
            int32_t a = lo, b = GOV_R_TOP;
            while (b - a > 1) { /* price(a) > budget ≥ price(b) */
                int32_t mid = (a + b) / 2;
                if (price_step(net, gov, first, rung_x(net, mid), rung_h(net, mid)) <= gov->budget)
                    b = mid;
                else
                    a = mid;
            }
            r = b;
        }
        priced = price_step(net, gov, first, rung_x(net, r), rung_h(net, r));
    }
    tx = rung_x(net, r);
    th = rung_h(net, r);
    /* The whole step in one invocation at (tx, th): no stop between the layers. */
    for (l = 0; l < net->layers; l++) {
        gov->theta_x[l] = (uint16_t)tx;
        gov->theta_h[l] = (uint16_t)th;
        for (i = 0; i < H; i++) /* kept so that the split policy's history stays meaningful */
            gov->h_prev[l][i] = net->h[l][i];
        if (l == 0)
            used += run_layer(net, 0, x, n, tx, th, first);
        else
            used += run_layer(net, l, net->h[l - 1u], H, tx, th, first);
    }
    finish_step(net, used, first);
    gov->priced = priced;
    gov->raised = (uint8_t)(tx != bx || th != bh);
    gov->infeasible = infeasible;
    return EDGEDRNN_OK;
}

/* ------------------------------------------------------------------------------------------ output layer */

edgedrnn_status edgedrnn_output(const edgedrnn_t *net, int32_t *out)
{
    return edgedrnn_output_checked(net, out, 0);
}

edgedrnn_status edgedrnn_output_checked(const edgedrnn_t *net, int32_t *out, uint8_t *wrapped)
{
    const int16_t *h = edgedrnn_h(net);
    const uint32_t H = net->hidden;
    uint8_t any = 0;
    uint16_t o;
    if (net->out_weight == NULL || out == NULL)
        return net->out_weight == NULL ? EDGEDRNN_E_OUTPUTS : EDGEDRNN_E_NULL;
    for (o = 0; o < net->n_outputs; o++) {
        const int8_t *w = net->out_weight + (uint32_t)o * H;
        /* Exact in 64 bits (|Σ| < 2^33 + 2^31; one SMLAL per MAC on the ARM), then wrapped to int32 as the
         * ARM's 32-bit MAC would: out = the sum mod 2^32, and `wrapped` says whether that lost anything. */
        int64_t s = net->out_bias[o];
        uint32_t j;
        for (j = 0; j < H; j++)
            s += (int32_t)w[j] * (int32_t)h[j];
        out[o] = to_int32((uint32_t)(uint64_t)s);
        any |= (uint8_t)(s != (int64_t)out[o]);
    }
    if (wrapped != NULL)
        *wrapped = any;
    return EDGEDRNN_OK;
}
