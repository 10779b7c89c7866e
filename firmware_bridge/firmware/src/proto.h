/*
 * proto.h — the board side of the legloop board protocol (docs/protocol.md): the session state machine and
 * every request handler, on top of the frame layer (proto_codec.h) and the delta-GRU core (edgedrnn.h).
 *
 * No I/O here: the caller (src/app.c) feeds received bytes to proto_feed(), which returns a response frame to send
 * (decoded; the caller COBS-encodes it) when a good request completed. All memory is static and sized at compile
 * time; no floating point. The only HAL function used is hal_ticks(), around the computation of a STEP.
 */
#ifndef LEGLOOP_PROTO_H
#define LEGLOOP_PROTO_H

#include <stdint.h>

#include "edgedrnn.h"
#include "proto_codec.h"

/* ------------------------------------------------------------------------------------------ build options */

#ifndef LEGLOOP_MAX_PAYLOAD /* INFO.max_payload: largest request/response payload (128..4096) */
#define LEGLOOP_MAX_PAYLOAD 1024
#endif
#ifndef LEGLOOP_CLOCK_HZ /* INFO.clock_hz: the EdgeDRNN clock the cycle model assumes (the MiniZed's 125 MHz) */
#define LEGLOOP_CLOCK_HZ 125000000u
#endif
#ifndef LEGLOOP_FIRMWARE /* INFO.firmware: ≤ 32 ASCII bytes */
#define LEGLOOP_FIRMWARE "legloop-fw 1.1"
#endif
/* Largest model image (§10) the board holds; by default the largest net of this build's capacity:
 * 4 layers of MAX_HIDDEN, the MAX_INPUT-wide input, MAX_OUTPUTS outputs. */
#ifndef LEGLOOP_MAX_IMAGE_BYTES
#define LEGLOOP_MAX_IMAGE_BYTES                                                                                   \
    (3u * LEGLOOP_MAX_HIDDEN * (1u + LEGLOOP_MAX_INPUT + LEGLOOP_MAX_HIDDEN) +                                    \
     (LEGLOOP_MAX_LAYERS - 1u) * 3u * LEGLOOP_MAX_HIDDEN * (1u + 2u * LEGLOOP_MAX_HIDDEN) +                       \
     LEGLOOP_MAX_OUTPUTS * (LEGLOOP_MAX_HIDDEN + 4u))
#endif

#if LEGLOOP_MAX_PAYLOAD < 128 || LEGLOOP_MAX_PAYLOAD > 4096
#error "LEGLOOP_MAX_PAYLOAD must be 128..4096 (docs/protocol.md §9)"
#endif
#if 14 + 4 * LEGLOOP_MAX_OUTPUTS > LEGLOOP_MAX_PAYLOAD
#error "a RESULT with LEGLOOP_MAX_OUTPUTS outputs does not fit LEGLOOP_MAX_PAYLOAD"
#endif

#define PROTO_VERSION 1u
#define PROTO_VERSION_MINOR 1u /* 1.1: SET_GOVERNOR, the GOVERNOR capability, RESULT governor flags */
#define PROTO_RX_CAP PROTO_COBS_MAX(PROTO_OVERHEAD + LEGLOOP_MAX_PAYLOAD) /* §4 max_encoded: 1037 for 1024 */
/* Responses other than PONG (built over the request in the receive buffer): INFO and ERROR are the longest at 66
 * bytes of payload, or RESULT with many outputs (and, governed with REPORT_THETA, 4 bytes per layer). */
#define PROTO_RESULT_MAX (14u + 4u * LEGLOOP_MAX_OUTPUTS + 4u * LEGLOOP_MAX_LAYERS)
#define PROTO_TX_PAYLOAD (PROTO_RESULT_MAX > 66u ? PROTO_RESULT_MAX : 66u)

/* Message types, error codes, bits (§5) */
enum {
    MSG_HELLO = 0x01, MSG_CONFIGURE = 0x02, MSG_LOAD_BEGIN = 0x03, MSG_LOAD_CHUNK = 0x04, MSG_LOAD_END = 0x05,
    MSG_RESET_STATE = 0x06, MSG_STEP = 0x07, MSG_SET_THRESHOLDS = 0x08, MSG_STATS = 0x09, MSG_PING = 0x0A,
    MSG_SET_GOVERNOR = 0x0B,
    MSG_RESPONSE = 0x80, MSG_ERROR = 0xFF
};
enum {
    ERR_UNKNOWN_TYPE = 1, ERR_BAD_LENGTH = 2, ERR_BAD_VERSION = 3, ERR_BAD_VALUE = 4, ERR_NOT_CONFIGURED = 5,
    ERR_NO_MODEL = 6, ERR_TOO_LARGE = 7, ERR_BAD_CRC32 = 8, ERR_LOAD_ORDER = 9, ERR_INTERNAL = 10
};
enum { CAP_CYCLE_MODEL = 1, CAP_COMPUTE_TIMER = 2, CAP_FAULT_INJECTION = 4, CAP_WIRE_TIME_EMULATION = 8, CAP_GOVERNOR = 16 };
enum { STATUS_CONFIGURED = 1, STATUS_MODEL_LOADED = 2, STATUS_LOAD_IN_PROGRESS = 4 };
enum { RESULT_FIRST_STEP = 1, RESULT_OUTPUT_WRAPPED = 2, RESULT_GOVERNED = 4, RESULT_THETA_RAISED = 8, RESULT_OVER_BUDGET = 16 };
/* SET_GOVERNOR (§5.12): policies and options */
enum { GOVERNOR_OFF = 0, GOVERNOR_SPLIT = 1, GOVERNOR_WORST = 2 };
enum { GOVERNOR_REPORT_THETA = 1 };

/* STATS_REPLY (§5.9): thirteen u32 counters, wrapping. */
typedef struct {
    uint32_t frames_rx, crc_errors, truncated, malformed, resyncs, steps, errors_sent;
    uint32_t fault_drop, fault_corrupt, fault_truncate, fault_duplicate, fault_delay, resets;
} proto_stats;

/* Where the model image lives. A port may place it (section ".image" on the MPS2 boards: RAM that start-up
 * does not clear) so that a debugger, a flash programmer or QEMU's loader can put an image there before boot:
 * with `magic` = PROTO_PRELOAD_MAGIC, `bytes` = its size and `bytes_check` = ~bytes, LOAD_BEGIN of exactly that
 * size starts with all bytes already received, and LOAD_END (which checks the CRC-32) may follow at once. */
#define PROTO_PRELOAD_MAGIC 0x4C504C4Cu /* "LLPL" */
#define PROTO_IMAGE_OFFSET 16u          /* the image starts 16 bytes into the store */
typedef struct {
    uint32_t magic, bytes, bytes_check, reserved;
    uint8_t image[LEGLOOP_MAX_IMAGE_BYTES];
} proto_image_store;

typedef enum { LOAD_NONE = 0, LOAD_ACTIVE = 1, LOAD_DONE = 2 } proto_load_state;

typedef struct {
    proto_rx rx;
    proto_stats stats;
    uint32_t boot_id;
    uint16_t capabilities; /* CYCLE_MODEL | COMPUTE_TIMER, plus what the serving loop adds */
    /* configuration (CONFIGURE) */
    uint8_t configured, layers, outputs;
    uint16_t input_size, hidden, theta_x, theta_h;
    uint32_t weight_bytes, model_bytes;
    /* load (LOAD_*) */
    proto_load_state load;
    uint32_t load_total, load_next, load_crc, model_hash, preload_bytes;
    /* the threshold governor (SET_GOVERNOR): policy, options; its state */
    uint8_t governor, governor_options;
    /* the model */
    proto_image_store *store;
    edgedrnn_t net;
    edgedrnn_governor gov;
    int16_t x[LEGLOOP_MAX_INPUT];
    int32_t out[LEGLOOP_MAX_OUTPUTS];
    uint8_t rx_buf[PROTO_RX_CAP];
    uint8_t tx_buf[PROTO_OVERHEAD + PROTO_TX_PAYLOAD];
} proto_board;

/* Power-on state: empty (no configuration, no model), counters 0, the given boot id (made non-zero). The image
 * store is the caller's; a valid preload header in it is taken over (and cleared). */
void proto_init(proto_board *b, proto_image_store *store, uint32_t boot_id);

/* Feed one received byte. Returns the length of a response frame to send (decoded: header | payload | CRC, at
 * *frame; COBS-encode it and append 0x00), or 0. Bad frames are counted in b->stats and get no response. */
uint32_t proto_feed(proto_board *b, uint8_t byte, const uint8_t **frame);

/* Handle the good frame that b->rx holds (what proto_feed does after a GOOD verdict); returns the response. */
uint32_t proto_handle(proto_board *b, const uint8_t **frame);

/* A 32-bit mix (murmur3's finaliser) for boot ids from weak entropy (a tick count, a process id). */
uint32_t proto_mix32(uint32_t x);

#endif /* LEGLOOP_PROTO_H */
