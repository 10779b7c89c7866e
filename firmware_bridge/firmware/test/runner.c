/*
 * runner.c — the test-vector runner (format in runner.h). Portable: it touches the outside world only through
 * the emit callback and hal_ticks(), so the host and the QEMU test builds run the very same code on the very
 * same vectors. Every read of the blob is bounds-checked.
 */
#include "runner.h"

#include <stddef.h>

#include "edgedrnn.h"
#include "hal.h"

#define HEADER_BYTES 36u

static edgedrnn_t g_net; /* static: tens of KB, too big for a small stack */

typedef struct {
    const uint8_t *p;
    uint32_t left;
} cursor;

static int take(cursor *c, uint32_t n, const uint8_t **out)
{
    if (c->left < n)
        return 0;
    *out = c->p;
    c->p += n;
    c->left -= n;
    return 1;
}

static uint16_t le16(const uint8_t *b)
{
    return (uint16_t)(b[0] | (uint16_t)(b[1] << 8));
}

static uint32_t le32(const uint8_t *b)
{
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
}

/* Two's-complement reinterpretation without an out-of-range conversion. */
static int16_t as_i16(uint16_t v)
{
    return v < 0x8000u ? (int16_t)v : (int16_t)((int32_t)v - 0x10000);
}

static int32_t as_i32(uint32_t v)
{
    return v <= 0x7FFFFFFFu ? (int32_t)v : -(int32_t)(~v) - 1;
}

/* Output through a small buffer so the emit callback sees few, larger writes. */
static runner_emit_fn g_emit;
static uint8_t g_out[256];
static uint32_t g_out_len;

static void out_flush(void)
{
    if (g_out_len > 0u)
        g_emit(g_out, g_out_len);
    g_out_len = 0;
}

static void out_u32(uint32_t v)
{
    if (g_out_len + 4u > sizeof g_out)
        out_flush();
    g_out[g_out_len++] = (uint8_t)v;
    g_out[g_out_len++] = (uint8_t)(v >> 8);
    g_out[g_out_len++] = (uint8_t)(v >> 16);
    g_out[g_out_len++] = (uint8_t)(v >> 24);
}

static void out_i16(int32_t v)
{
    uint32_t u = (uint32_t)v;
    if (g_out_len + 2u > sizeof g_out)
        out_flush();
    g_out[g_out_len++] = (uint8_t)u;
    g_out[g_out_len++] = (uint8_t)(u >> 8);
}

static uint32_t finish(uint32_t status, uint32_t steps)
{
    out_u32(RUNNER_MAGIC_END);
    out_u32(status);
    out_u32(steps);
    out_flush();
    return status;
}

static void emit_state(const edgedrnn_t *net)
{
    uint16_t l;
    uint32_t i;
    for (l = 0; l < net->layers; l++) {
        uint32_t inputs = l == 0 ? net->input_padded : net->hidden;
        for (i = 0; i < inputs; i++)
            out_i16(net->x_hat[l][i]);
        for (i = 0; i < net->hidden; i++)
            out_i16(net->h_hat[l][i]);
        for (i = 0; i < net->hidden; i++)
            out_i16(net->h[l][i]);
        for (i = 0; i < 4u * net->hidden; i++)
            out_u32((uint32_t)edgedrnn_accumulator(net, l, i));
    }
}

static uint32_t dump_luts(void)
{
    int32_t p;
    for (p = -2048; p <= 2047; p++)
        out_i16(edgedrnn_sig(p));
    for (p = -1024; p <= 1023; p++)
        out_i16(edgedrnn_tanh(p));
    return finish(0, 0);
}

uint32_t runner_run(const uint8_t *blob, uint32_t size, runner_emit_fn emit)
{
    cursor c;
    const uint8_t *h, *image, *w_out, *b_raw, *rec;
    uint16_t mode, layers, input_size, hidden, n_out, x_width, flags, lam;
    uint32_t total, steps, image_bytes, t, o, l;
    int32_t bias[LEGLOOP_MAX_OUTPUTS];
    int16_t x[LEGLOOP_MAX_INPUT];
    int32_t out[LEGLOOP_MAX_OUTPUTS];
    edgedrnn_status st;

    g_emit = emit;
    g_out_len = 0;
    out_u32(RUNNER_MAGIC_OUT);
    out_u32(LEGLOOP_MAX_LAYERS);
    out_u32(LEGLOOP_MAX_HIDDEN);
    out_u32(LEGLOOP_MAX_INPUT);
    out_u32(LEGLOOP_MAX_OUTPUTS);
    out_u32(hal_tick_hz);

    c.p = blob;
    c.left = size;
    if (!take(&c, HEADER_BYTES, &h))
        return finish(RUNNER_E_TRUNCATED, 0);
    if (le32(h) != RUNNER_MAGIC_IN || le16(h + 4) != 1u)
        return finish(RUNNER_E_FORMAT, 0);
    mode = le16(h + 6);
    total = le32(h + 8);
    if (total > size)
        return finish(RUNNER_E_TRUNCATED, 0);
    c.left = total - HEADER_BYTES; /* never read past the blob's own end */
    if (mode == 1u)
        return dump_luts();
    if (mode != 0u)
        return finish(RUNNER_E_FORMAT, 0);
    layers = le16(h + 12);
    input_size = le16(h + 14);
    hidden = le16(h + 16);
    n_out = le16(h + 18);
    x_width = le16(h + 20);
    flags = le16(h + 22);
    lam = le16(h + 24);
    steps = le32(h + 28);
    image_bytes = le32(h + 32);

    if (!take(&c, image_bytes, &image))
        return finish(RUNNER_E_TRUNCATED, 0);
    st = edgedrnn_init(&g_net, image, image_bytes, layers, input_size, hidden);
    if (st != EDGEDRNN_OK)
        return finish(st, 0);
    edgedrnn_set_saturate(&g_net, flags & 1u);
    edgedrnn_set_burst_latency(&g_net, lam);
    if (n_out > 0u) {
        if (n_out > LEGLOOP_MAX_OUTPUTS)
            return finish(EDGEDRNN_E_OUTPUTS, 0);
        if (!take(&c, (uint32_t)n_out * hidden, &w_out) || !take(&c, 4u * n_out, &b_raw))
            return finish(RUNNER_E_TRUNCATED, 0);
        for (o = 0; o < n_out; o++)
            bias[o] = as_i32(le32(b_raw + 4u * o));
        st = edgedrnn_set_output(&g_net, (const int8_t *)(const void *)w_out, bias, n_out);
        if (st != EDGEDRNN_OK)
            return finish(st, 0);
    }
    if (x_width > LEGLOOP_MAX_INPUT)
        return finish(EDGEDRNN_E_INPUT, 0);

    for (t = 0; t < steps; t++) {
        uint32_t t0, t1, t2, i;
        if (!take(&c, 6u + 2u * x_width, &rec))
            return finish(RUNNER_E_TRUNCATED, t);
        st = edgedrnn_set_theta(&g_net, le16(rec), le16(rec + 2));
        if (st != EDGEDRNN_OK)
            return finish(st, t);
        if (le16(rec + 4) & 1u)
            edgedrnn_reset(&g_net);
        for (i = 0; i < x_width; i++)
            x[i] = as_i16(le16(rec + 6u + 2u * i));
        t0 = hal_ticks();
        st = edgedrnn_step(&g_net, x, x_width);
        t1 = hal_ticks();
        if (st != EDGEDRNN_OK)
            return finish(st, t);
        if (n_out > 0u)
            (void)edgedrnn_output(&g_net, out);
        t2 = hal_ticks();
        out_u32(g_net.stats.cycles);
        out_u32(g_net.stats.fired_columns);
        out_u32(g_net.stats.nonzero_deltas);
        out_u32(t1 - t0);
        out_u32(t2 - t1);
        for (l = 0; l < layers; l++) {
            out_u32(g_net.stats.layer_fired[l]);
            out_u32(g_net.stats.layer_mac_cycles[l]);
            out_u32(g_net.stats.layer_act_cycles[l]);
        }
        for (i = 0; i < hidden; i++)
            out_i16(edgedrnn_h(&g_net)[i]);
        for (o = 0; o < n_out; o++)
            out_u32((uint32_t)out[o]);
        if (flags & 2u)
            emit_state(&g_net);
    }
    return finish(0, steps);
}
