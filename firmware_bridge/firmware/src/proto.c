/*
 * proto.c — the board's request handlers (docs/protocol.md §5) and its session state (§6).
 *
 * Every handler checks, in the spec's order of precedence (§5.11): the state the request needs
 * (not_configured, no_model, load_order for a missing LOAD_BEGIN or missing bytes), then the payload length
 * (bad_length), then the fields (load_order for a gap, bad_value, too_large), then bad_crc32. bad_version and
 * unknown_type come first, in proto_handle(). A refused request changes nothing.
 */
#include "proto.h"

#include "hal.h"

/* --------------------------------------------------------------------------------------------- helpers */

uint32_t proto_mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x85EBCA6Bu;
    x ^= x >> 13;
    x *= 0xC2B2AE35u;
    x ^= x >> 16;
    return x;
}

/* The response being built in tx (or, for PONG, over the request in rx_buf). */
typedef struct {
    uint8_t *frame;
    uint8_t *p; /* payload */
    uint32_t n; /* payload length so far */
} resp;

static void text(resp *r, const char *s)
{
    while (*s && r->n < 2u + 64u)
        r->p[r->n++] = (uint8_t)*s++;
}

static void text_u32(resp *r, uint32_t v)
{
    char d[10];
    int k = 0;
    do {
        d[k++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    while (k && r->n < 2u + 64u)
        r->p[r->n++] = (uint8_t)d[--k];
}

/* Start an ERROR (code, the request's type); the caller may append more text. Returns r for chaining. */
static resp *error(proto_board *b, resp *r, uint8_t code, const char *s)
{
    r->frame[1] = MSG_ERROR;
    r->p[0] = code;
    r->p[1] = b->rx.type;
    r->n = 2;
    b->stats.errors_sent++;
    text(r, s);
    return r;
}

/* ERROR with the text "<pre><value><post>". */
static void errv(proto_board *b, resp *r, uint8_t code, const char *pre, uint32_t value, const char *post)
{
    text_u32(error(b, r, code, pre), value);
    text(r, post);
}

static void ok(resp *r, uint8_t request)
{
    r->frame[1] = (uint8_t)(request | MSG_RESPONSE);
}

static uint32_t image_bytes(uint8_t layers, uint16_t input_size, uint16_t hidden)
{
    /* Σ_l 3H·(1 + I_l + H), I_1 = input padded to 8, I_l = H after: at most 4·3·1024·(1+2048+1024) < 2^32 */
    uint32_t H = hidden, I = ((uint32_t)input_size + 7u) / 8u * 8u, total = 0, l;
    for (l = 0; l < layers; l++)
        total += 3u * H * (1u + (l == 0 ? I : H) + H);
    return total;
}

static uint8_t max_outputs(void)
{
    uint32_t by_payload = (LEGLOOP_MAX_PAYLOAD - 14u) / 4u;
    return (uint8_t)(LEGLOOP_MAX_OUTPUTS < by_payload ? LEGLOOP_MAX_OUTPUTS : by_payload);
}

static uint16_t max_input(void)
{
    uint32_t by_payload = LEGLOOP_MAX_PAYLOAD / 2u;
    return (uint16_t)(LEGLOOP_MAX_INPUT < by_payload ? LEGLOOP_MAX_INPUT : by_payload);
}

static void unload(proto_board *b)
{
    b->load = LOAD_NONE;
    b->load_total = b->load_next = b->load_crc = 0;
    b->model_hash = 0;
}

/* ------------------------------------------------------------------------------------------------ state */

void proto_init(proto_board *b, proto_image_store *store, uint32_t boot_id)
{
    /* Field by field: the buffers (receive, transmit, x, out) and the net need no initial value — each is
     * written before it is read (the net by edgedrnn_init at LOAD_END) — so nothing large is cleared. */
    uint32_t *counter = &b->stats.frames_rx;
    uint32_t i;
    for (i = 0; i < sizeof b->stats / sizeof *counter; i++)
        counter[i] = 0;
    proto_rx_init(&b->rx, b->rx_buf, PROTO_RX_CAP);
    b->boot_id = boot_id ? boot_id : 1u;
    b->capabilities = CAP_CYCLE_MODEL | CAP_COMPUTE_TIMER | CAP_GOVERNOR;
    b->governor = GOVERNOR_OFF;
    b->governor_options = 0;
    b->gov.budget = 0;
    b->configured = b->layers = b->outputs = 0;
    b->input_size = b->hidden = b->theta_x = b->theta_h = 0;
    b->weight_bytes = b->model_bytes = 0;
    unload(b);
    b->preload_bytes = 0;
    b->store = store;
    if (store->magic == PROTO_PRELOAD_MAGIC && store->bytes == ~store->bytes_check && store->bytes > 0 &&
        store->bytes <= LEGLOOP_MAX_IMAGE_BYTES)
        b->preload_bytes = store->bytes;
    store->magic = 0;
}

static uint8_t status(const proto_board *b)
{
    uint8_t s = 0;
    if (b->configured)
        s |= STATUS_CONFIGURED;
    if (b->load == LOAD_DONE)
        s |= STATUS_MODEL_LOADED;
    if (b->load == LOAD_ACTIVE)
        s |= STATUS_LOAD_IN_PROGRESS;
    return s;
}

/* --------------------------------------------------------------------------------------------- handlers */

static void on_hello(proto_board *b, resp *r)
{
    const char *fw = LEGLOOP_FIRMWARE;
    uint8_t *p = r->p;
    uint32_t n = 0;
    ok(r, MSG_HELLO);
    p[0] = PROTO_VERSION;
    p[1] = PROTO_VERSION_MINOR;
    proto_put16(p + 2, b->capabilities);
    proto_put32(p + 4, b->boot_id);
    proto_put32(p + 8, b->model_hash);
    proto_put32(p + 12, LEGLOOP_CLOCK_HZ);
    proto_put32(p + 16, hal_tick_hz);
    proto_put16(p + 20, LEGLOOP_MAX_PAYLOAD);
    p[22] = LEGLOOP_MAX_LAYERS;
    p[23] = max_outputs();
    proto_put16(p + 24, LEGLOOP_MAX_HIDDEN);
    proto_put16(p + 26, max_input());
    proto_put32(p + 28, LEGLOOP_MAX_IMAGE_BYTES);
    p[32] = status(b);
    while (fw[n] && n < 32u) {
        p[34u + n] = (uint8_t)fw[n];
        n++;
    }
    p[33] = (uint8_t)n;
    r->n = 34u + n;
}

static void on_configure(proto_board *b, resp *r, const uint8_t *q, uint32_t len)
{
    uint8_t layers, outputs;
    uint16_t input_size, hidden, theta_x, theta_h;
    uint32_t mbytes;
    if (len != 12u) {
        errv(b, r, ERR_BAD_LENGTH, "CONFIGURE payload must be 12 bytes, got ", len, "");
        return;
    }
    layers = q[0];
    input_size = proto_get16(q + 2);
    hidden = proto_get16(q + 4);
    outputs = q[6];
    theta_x = proto_get16(q + 8);
    theta_h = proto_get16(q + 10);
    /* the Python emulator's order: flags, reserved, Θ, then field by field bad_value before too_large */
    if (q[1] != 0) {
        errv(b, r, ERR_BAD_VALUE, "CONFIGURE.flags=", q[1], ": protocol 1 defines none (expected 0)");
        return;
    }
    if (q[7] != 0) {
        errv(b, r, ERR_BAD_VALUE, "CONFIGURE.reserved=", q[7], ": expected 0");
        return;
    }
    if (theta_x > EDGEDRNN_THETA_MAX || theta_h > EDGEDRNN_THETA_MAX) {
        int bad_x = theta_x > EDGEDRNN_THETA_MAX;
        errv(b, r, ERR_BAD_VALUE, bad_x ? "theta_x=" : "theta_h=", bad_x ? theta_x : theta_h, ": expected 0..511");
        return;
    }
    if (layers < 1) {
        error(b, r, ERR_BAD_VALUE, "layers must be >= 1");
        return;
    }
    if (layers > LEGLOOP_MAX_LAYERS) {
        errv(b, r, ERR_TOO_LARGE, "layers=", layers, "; this board takes 1..4");
        return;
    }
    if (hidden < 8u || hidden % 8u != 0) {
        errv(b, r, ERR_BAD_VALUE, "hidden=", hidden, " must be a multiple of 8, >= 8");
        return;
    }
    if (hidden > LEGLOOP_MAX_HIDDEN) {
        errv(b, r, ERR_TOO_LARGE, "hidden=", hidden, "; this build's MAX_HIDDEN is ");
        text_u32(r, LEGLOOP_MAX_HIDDEN);
        return;
    }
    if (input_size < 1u) {
        error(b, r, ERR_BAD_VALUE, "input_size must be >= 1");
        return;
    }
    if (input_size > max_input()) {
        errv(b, r, ERR_TOO_LARGE, "input_size=", input_size, "; this board takes at most ");
        text_u32(r, max_input());
        return;
    }
    if (outputs < 1u) {
        error(b, r, ERR_BAD_VALUE, "outputs must be >= 1");
        return;
    }
    if (outputs > max_outputs()) {
        errv(b, r, ERR_TOO_LARGE, "outputs=", outputs, "; this board takes at most ");
        text_u32(r, max_outputs());
        return;
    }
    mbytes = image_bytes(layers, input_size, hidden) + (uint32_t)outputs * (hidden + 4u);
    if (mbytes > LEGLOOP_MAX_IMAGE_BYTES) {
        errv(b, r, ERR_TOO_LARGE, "model image ", mbytes, " bytes > the board's ");
        text_u32(r, LEGLOOP_MAX_IMAGE_BYTES);
        return;
    }
    /* accepted: discard any model and load in progress, store geometry and thresholds; the governor is off */
    unload(b);
    b->governor = GOVERNOR_OFF;
    b->governor_options = 0;
    b->configured = 1;
    b->layers = layers;
    b->input_size = input_size;
    b->hidden = hidden;
    b->outputs = outputs;
    b->theta_x = theta_x;
    b->theta_h = theta_h;
    b->weight_bytes = image_bytes(layers, input_size, hidden);
    b->model_bytes = mbytes;
    ok(r, MSG_CONFIGURE);
    proto_put32(r->p, b->weight_bytes);
    proto_put32(r->p + 4, b->model_bytes);
    r->n = 8;
}

static int need_config(proto_board *b, resp *r)
{
    if (!b->configured) {
        error(b, r, ERR_NOT_CONFIGURED, "not configured: send CONFIGURE first");
        return 0;
    }
    return 1;
}

static int need_model(proto_board *b, resp *r)
{
    if (!need_config(b, r))
        return 0;
    if (b->load != LOAD_DONE) {
        error(b, r, ERR_NO_MODEL, "no model: send LOAD_BEGIN, LOAD_CHUNK..., LOAD_END first");
        return 0;
    }
    return 1;
}

static int need_empty(proto_board *b, resp *r, uint32_t len)
{
    if (len != 0) {
        errv(b, r, ERR_BAD_LENGTH, "payload must be empty, got ", len, " bytes");
        return 0;
    }
    return 1;
}

static void on_load_begin(proto_board *b, resp *r, const uint8_t *q, uint32_t len)
{
    uint32_t total;
    if (!need_config(b, r))
        return;
    if (len != 8u) {
        errv(b, r, ERR_BAD_LENGTH, "LOAD_BEGIN payload must be 8 bytes, got ", len, "");
        return;
    }
    total = proto_get32(q);
    if (total != b->model_bytes) {
        errv(b, r, ERR_BAD_VALUE, "LOAD_BEGIN total ", total, " bytes; this configuration needs ");
        text_u32(r, b->model_bytes);
        return;
    }
    b->load = LOAD_ACTIVE; /* unloads the current model */
    b->model_hash = 0;
    b->load_total = total;
    b->load_crc = proto_get32(q + 4);
    /* an image of exactly this size preloaded before boot counts as received (LOAD_END still checks its CRC) */
    b->load_next = b->preload_bytes == total ? total : 0u;
    ok(r, MSG_LOAD_BEGIN);
    proto_put32(r->p, total);
    r->n = 4;
}

static void on_load_chunk(proto_board *b, resp *r, const uint8_t *q, uint32_t len)
{
    uint32_t offset, n, i;
    uint8_t *dst;
    if (!need_config(b, r))
        return;
    if (b->load != LOAD_ACTIVE) {
        error(b, r, ERR_LOAD_ORDER, "LOAD_CHUNK without LOAD_BEGIN");
        return;
    }
    if (len < 5u || len > LEGLOOP_MAX_PAYLOAD) {
        errv(b, r, ERR_BAD_LENGTH, "LOAD_CHUNK payload must be 5..max_payload bytes (offset + data), got ", len, "");
        return;
    }
    offset = proto_get32(q);
    n = len - 4u;
    if (offset > b->load_next) {
        errv(b, r, ERR_LOAD_ORDER, "chunk at ", offset, " leaves a gap: next byte due is ");
        text_u32(r, b->load_next);
        return;
    }
    if (n > b->load_total - offset) { /* offset <= next <= total: no wrap */
        errv(b, r, ERR_BAD_VALUE, "chunk runs past the image's ", b->load_total, " bytes");
        return;
    }
    dst = b->store->image + offset;
    for (i = 0; i < n; i++)
        dst[i] = q[4u + i];
    b->preload_bytes = 0; /* the store no longer holds (only) the preloaded image */
    if (offset + n > b->load_next)
        b->load_next = offset + n;
    ok(r, MSG_LOAD_CHUNK);
    proto_put32(r->p, offset);
    proto_put16(r->p + 4, (uint16_t)n);
    r->n = 6;
}

static void on_load_end(proto_board *b, resp *r, uint32_t len)
{
    const uint8_t *img = b->store->image;
    uint32_t h, o;
    int32_t bias[LEGLOOP_MAX_OUTPUTS];
    if (!need_config(b, r))
        return;
    if (b->load == LOAD_NONE) {
        error(b, r, ERR_LOAD_ORDER, "LOAD_END without LOAD_BEGIN");
        return;
    }
    if (b->load == LOAD_ACTIVE && b->load_next < b->load_total) {
        errv(b, r, ERR_LOAD_ORDER, "LOAD_END after ", b->load_next, " of ");
        text_u32(r, b->load_total);
        text(r, " bytes");
        return;
    }
    if (!need_empty(b, r, len))
        return;
    if (b->load == LOAD_ACTIVE) {
        h = proto_crc32(img, b->load_total);
        if (h != b->load_crc) {
            error(b, r, ERR_BAD_CRC32, "image CRC-32 differs from LOAD_BEGIN's");
            return;
        }
        for (o = 0; o < b->outputs; o++)
            bias[o] = (int32_t)proto_get32(img + b->weight_bytes + (uint32_t)b->outputs * b->hidden + 4u * o);
        if (edgedrnn_init(&b->net, img, b->weight_bytes, b->layers, b->input_size, b->hidden) != EDGEDRNN_OK ||
            edgedrnn_set_theta(&b->net, b->theta_x, b->theta_h) != EDGEDRNN_OK ||
            edgedrnn_set_output(&b->net, (const int8_t *)(img + b->weight_bytes), bias, b->outputs) != EDGEDRNN_OK) {
            error(b, r, ERR_INTERNAL, "edgedrnn_init refused the configuration");
            return;
        }
        b->load = LOAD_DONE;
        b->model_hash = h;
        edgedrnn_governor_start(&b->gov, &b->net, b->gov.budget); /* a fresh state: a flat history */
    }
    /* a LOAD_END repeated after a good one (its ACK was lost) gets the same answer */
    ok(r, MSG_LOAD_END);
    proto_put32(r->p, b->model_hash);
    r->n = 4;
}

static void on_reset_state(proto_board *b, resp *r, uint32_t len)
{
    if (!need_model(b, r) || !need_empty(b, r, len))
        return;
    edgedrnn_reset(&b->net);
    edgedrnn_governor_start(&b->gov, &b->net, b->gov.budget);
    ok(r, MSG_RESET_STATE);
    r->n = 0;
}

static void on_step(proto_board *b, resp *r, const uint8_t *q, uint32_t len)
{
    uint32_t i, t0, dt, cycles, fired, deltas;
    uint16_t flags = 0;
    uint8_t wrapped = 0;
    uint8_t *p = r->p;
    if (!need_model(b, r))
        return;
    if (len != 2u * b->input_size) {
        errv(b, r, ERR_BAD_LENGTH, "STEP payload must be 2*input_size = ", 2u * b->input_size, " bytes, got ");
        text_u32(r, len);
        return;
    }
    for (i = 0; i < b->input_size; i++)
        b->x[i] = (int16_t)proto_get16(q + 2u * i);
    if (b->net.first)
        flags |= RESULT_FIRST_STEP;
    t0 = hal_ticks();
    /* the geometry was checked at LOAD_END */
    if (b->governor == GOVERNOR_SPLIT)
        (void)edgedrnn_step_governed(&b->net, &b->gov, b->x, b->input_size);
    else if (b->governor == GOVERNOR_WORST)
        (void)edgedrnn_step_governed_worst(&b->net, &b->gov, b->x, b->input_size);
    else
        (void)edgedrnn_step(&b->net, b->x, b->input_size);
    (void)edgedrnn_output_checked(&b->net, b->out, &wrapped);
    dt = hal_ticks() - t0;
    if (wrapped)
        flags |= RESULT_OUTPUT_WRAPPED;
    if (b->governor != GOVERNOR_OFF) {
        flags |= RESULT_GOVERNED;
        if (b->gov.raised)
            flags |= RESULT_THETA_RAISED;
        if (b->gov.infeasible)
            flags |= RESULT_OVER_BUDGET;
    }
    cycles = b->net.stats.cycles;
    fired = b->net.stats.fired_columns;
    deltas = b->net.stats.nonzero_deltas;
    ok(r, MSG_STEP);
    proto_put32(p, cycles);
    proto_put32(p + 4, dt);
    proto_put16(p + 8, (uint16_t)(fired > 0xFFFFu ? 0xFFFFu : fired));
    proto_put16(p + 10, (uint16_t)(deltas > 0xFFFFu ? 0xFFFFu : deltas));
    proto_put16(p + 12, flags);
    for (i = 0; i < b->outputs; i++)
        proto_put32(p + 14u + 4u * i, (uint32_t)b->out[i]);
    r->n = 14u + 4u * b->outputs;
    if (b->governor != GOVERNOR_OFF && (b->governor_options & GOVERNOR_REPORT_THETA)) {
        for (i = 0; i < b->layers; i++) {
            proto_put16(p + r->n, b->gov.theta_x[i]);
            proto_put16(p + r->n + 2u, b->gov.theta_h[i]);
            r->n += 4u;
        }
    }
    b->stats.steps++;
}

static void on_set_thresholds(proto_board *b, resp *r, const uint8_t *q, uint32_t len)
{
    uint16_t tx, th;
    if (!need_config(b, r))
        return;
    if (len != 4u) {
        errv(b, r, ERR_BAD_LENGTH, "SET_THRESHOLDS payload must be 4 bytes, got ", len, "");
        return;
    }
    tx = proto_get16(q);
    th = proto_get16(q + 2);
    if (tx > EDGEDRNN_THETA_MAX || th > EDGEDRNN_THETA_MAX) {
        int bad_x = tx > EDGEDRNN_THETA_MAX;
        errv(b, r, ERR_BAD_VALUE, bad_x ? "theta_x=" : "theta_h=", bad_x ? tx : th, ": expected 0..511");
        return;
    }
    b->theta_x = tx;
    b->theta_h = th;
    if (b->load == LOAD_DONE)
        (void)edgedrnn_set_theta(&b->net, tx, th);
    ok(r, MSG_SET_THRESHOLDS);
    proto_put16(r->p, tx);
    proto_put16(r->p + 2, th);
    r->n = 4;
}

/* SET_GOVERNOR (§5.12): u8 policy, u8 options, u16 reserved, u32 budget (cycles). Needs a configuration; from the
 * next STEP on. Switched on from off (or to another policy), the governor starts from the current state (a flat
 * estimate history); a repeat of the policy in force (its ACK was lost) changes nothing but the budget and options. */
static void on_set_governor(proto_board *b, resp *r, const uint8_t *q, uint32_t len)
{
    uint8_t policy, options;
    uint32_t budget;
    if (!need_config(b, r))
        return;
    if (len != 8u) {
        errv(b, r, ERR_BAD_LENGTH, "SET_GOVERNOR payload must be 8 bytes, got ", len, "");
        return;
    }
    policy = q[0];
    options = q[1];
    budget = proto_get32(q + 4);
    if (policy > GOVERNOR_WORST) {
        errv(b, r, ERR_BAD_VALUE, "governor policy ", policy, " unsupported: board has 0 off 1 split 2 worst");
        return;
    }
    if ((options & ~GOVERNOR_REPORT_THETA) != 0) {
        errv(b, r, ERR_BAD_VALUE, "SET_GOVERNOR.options=", options, ": only bit 0 (REPORT_THETA) is defined");
        return;
    }
    if (proto_get16(q + 2) != 0) {
        errv(b, r, ERR_BAD_VALUE, "SET_GOVERNOR.reserved=", proto_get16(q + 2), ": expected 0");
        return;
    }
    if (policy != GOVERNOR_OFF && budget == 0) {
        error(b, r, ERR_BAD_VALUE, "SET_GOVERNOR.budget must be >= 1 cycle");
        return;
    }
    if (policy != GOVERNOR_OFF && (options & GOVERNOR_REPORT_THETA) &&
        14u + 4u * b->outputs + 4u * b->layers > LEGLOOP_MAX_PAYLOAD) {
        errv(b, r, ERR_TOO_LARGE, "a RESULT with thresholds needs ", 14u + 4u * b->outputs + 4u * b->layers,
             " bytes > max_payload");
        return;
    }
    if (policy != GOVERNOR_OFF && b->governor != policy && b->load == LOAD_DONE)
        edgedrnn_governor_start(&b->gov, &b->net, budget); /* on from off, or another policy: a fresh state */
    b->gov.budget = budget;
    b->governor = policy;
    b->governor_options = policy != GOVERNOR_OFF ? options : 0u;
    ok(r, MSG_SET_GOVERNOR);
    r->p[0] = b->governor;
    r->p[1] = b->governor_options;
    proto_put16(r->p + 2, 0);
    proto_put32(r->p + 4, b->governor != GOVERNOR_OFF ? budget : 0u);
    r->n = 8;
}

static void on_stats(proto_board *b, resp *r, uint32_t len)
{
    const uint32_t *c = &b->stats.frames_rx;
    uint32_t i;
    if (!need_empty(b, r, len))
        return;
    ok(r, MSG_STATS);
    for (i = 0; i < 13u; i++)
        proto_put32(r->p + 4u * i, c[i]);
    r->n = 52;
}

/* ------------------------------------------------------------------------------------------------ dispatch */

uint32_t proto_handle(proto_board *b, const uint8_t **frame)
{
    uint8_t *req = b->rx.buf;
    const uint8_t t = b->rx.type;
    const uint32_t len = b->rx.payload_len;
    const uint8_t *q = req + PROTO_HEADER;
    resp r;
    uint16_t crc;
    b->stats.frames_rx++;
    r.frame = b->tx_buf;
    if (t == MSG_PING && b->rx.version == PROTO_VERSION)
        r.frame = req; /* PONG: the request's payload is already where the response's goes */
    r.p = r.frame + PROTO_HEADER;
    r.n = 0;
    if (b->rx.version != PROTO_VERSION && t != MSG_HELLO) {
        b->stats.malformed++;
        errv(b, &r, ERR_BAD_VERSION, "board speaks protocol 1, frame has ", b->rx.version, "");
    } else {
        switch (t) {
        case MSG_HELLO: on_hello(b, &r); break; /* whatever the version and payload */
        case MSG_CONFIGURE: on_configure(b, &r, q, len); break;
        case MSG_LOAD_BEGIN: on_load_begin(b, &r, q, len); break;
        case MSG_LOAD_CHUNK: on_load_chunk(b, &r, q, len); break;
        case MSG_LOAD_END: on_load_end(b, &r, len); break;
        case MSG_RESET_STATE: on_reset_state(b, &r, len); break;
        case MSG_STEP: on_step(b, &r, q, len); break;
        case MSG_SET_THRESHOLDS: on_set_thresholds(b, &r, q, len); break;
        case MSG_STATS: on_stats(b, &r, len); break;
        case MSG_SET_GOVERNOR: on_set_governor(b, &r, q, len); break;
        case MSG_PING:
            /* A frame a few bytes over max_payload can still fit max_encoded (COBS adds less than its worst
             * case to a frame without long runs): the table's bound is enforced, so PONG never exceeds it. */
            if (len > LEGLOOP_MAX_PAYLOAD) {
                r.frame = b->tx_buf;
                r.p = r.frame + PROTO_HEADER;
                errv(b, &r, ERR_BAD_LENGTH, "PING payload must be 0..max_payload bytes, got ", len, "");
                break;
            }
            ok(&r, MSG_PING);
            r.n = len;
            break;
        default:
            b->stats.malformed++;
            errv(b, &r, ERR_UNKNOWN_TYPE, "unknown request type ", t, "");
            break;
        }
    }
    r.frame[0] = PROTO_VERSION;
    proto_put16(r.frame + 2, b->rx.seq); /* echo */
    proto_put16(r.frame + 4, (uint16_t)r.n);
    crc = proto_crc16(0xFFFFu, r.frame, PROTO_HEADER + r.n);
    proto_put16(r.frame + PROTO_HEADER + r.n, crc);
    *frame = r.frame;
    return PROTO_OVERHEAD + r.n;
}

uint32_t proto_feed(proto_board *b, uint8_t byte, const uint8_t **frame)
{
    switch (proto_rx_feed(&b->rx, byte)) {
    case PROTO_RX_NONE: return 0;
    case PROTO_RX_GOOD: return proto_handle(b, frame);
    case PROTO_RX_TRUNCATED: b->stats.truncated++; return 0;
    case PROTO_RX_MALFORMED: b->stats.malformed++; return 0;
    case PROTO_RX_CRC: b->stats.crc_errors++; return 0;
    case PROTO_RX_RESYNC: b->stats.resyncs++; return 0;
    }
    return 0;
}
