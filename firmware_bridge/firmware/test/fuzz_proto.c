/*
 * fuzz_proto.c — libFuzzer target over the frame receiver and every request handler (src/proto*.c).
 *
 *     clang -fsanitize=fuzzer,address,undefined …  (make fuzz)  →  fuzz-proto CORPUS_DIR -runs=N
 *
 * Each input is one board session from power-on. Its first byte picks how the rest is read:
 *   even — raw wire bytes, fed one at a time to the board (garbage, damaged frames, resyncs);
 *   odd  — records [n u8][n bytes], each a decoded frame body (header | payload) that the harness completes with
 *          its CRC-16 and COBS-encodes, so the fuzzer reaches the handlers with good frames of any content;
 *          a record with n = 0 loads a pseudo-random model image of the configured size (auto_load), so steps
 *          run on any geometry the fuzzer configures.
 *
 * Beyond "no crash, no hang, no sanitizer report", it asserts (abort() → a crash libFuzzer keeps):
 *   - a frame is accepted only if an independent textbook decoder agrees: complete COBS, 8 + length bytes, a good
 *     CRC-16 (bitwise), and the chunk no longer than max_encoded;
 *   - every accepted frame gets exactly one response: a good frame (bitwise CRC, length field = payload bytes,
 *     payload ≤ max_payload) that echoes the sequence number, of type request | 0x80 or ERROR (2..66 bytes,
 *     request_type = the request's), PONG = the PING's bytes, and whose COBS encoding (proto_cobs_write, what app.c sends) decodes back to it;
 *   - a governed RESULT (SET_GOVERNOR) fits the budget unless flagged OVER_BUDGET, and its Θ tail is ≥ the floor;
 *     under WORST its cycles are ≤ the priced bound on every step and every layer ran at the same (Θx, Θh);
 *   - every byte moves the STATS counters exactly as the harness's own receiver judges it (a textbook reading of
 *     §4, with its own resync), and the board answers exactly the frames that receiver calls good.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hal.h"
#include "proto.h"

const uint32_t hal_tick_hz = 1000000000u;
uint32_t hal_ticks(void)
{
    static uint32_t t;
    return t += 1000u;
}

static proto_image_store store;
static proto_board board;

#define CHECK(c)                                                                                                  \
    do {                                                                                                          \
        if (!(c))                                                                                                 \
            abort();                                                                                              \
    } while (0)

static uint16_t crc16_bitwise(const uint8_t *p, size_t n)
{
    uint16_t crc = 0xFFFF;
    while (n--) {
        int b;
        crc = (uint16_t)(crc ^ (uint16_t)((uint32_t)*p++ << 8));
        for (b = 0; b < 8; b++)
            crc = (crc & 0x8000u) ? (uint16_t)(((uint32_t)crc << 1) ^ 0x1021u) : (uint16_t)((uint32_t)crc << 1);
    }
    return crc;
}

/* Independent reading of §2/§4 for one delimited chunk: the verdict, and the decoded frame in out[0..*n). */
static proto_rx_verdict textbook_verdict(const uint8_t *enc, size_t m, uint8_t *out, size_t *n)
{
    size_t i = 0, o = 0;
    int complete = 1;
    while (i < m) {
        size_t code = enc[i], k;
        for (k = 1; k < code; k++) {
            if (i + k >= m) {
                complete = 0;
                break;
            }
            out[o++] = enc[i + k];
        }
        if (!complete)
            break;
        i += code;
        if (code != 0xFFu && i < m)
            out[o++] = 0;
    }
    *n = o;
    if (o < 8 || o < 8u + (size_t)proto_get16(out + 4))
        return PROTO_RX_TRUNCATED;
    if (o > 8u + (size_t)proto_get16(out + 4) || !complete)
        return PROTO_RX_MALFORMED;
    return crc16_bitwise(out, o - 2u) == proto_get16(out + o - 2u) ? PROTO_RX_GOOD : PROTO_RX_CRC;
}

static int textbook_good(const uint8_t *enc, size_t m, uint8_t *out, size_t *n)
{
    return textbook_verdict(enc, m, out, n) == PROTO_RX_GOOD;
}

static uint8_t chunk[PROTO_RX_CAP + 2];
static size_t chunk_len;
static uint8_t req[PROTO_RX_CAP + 2];
static uint32_t verdicts[6];
static uint8_t out[PROTO_COBS_MAX(PROTO_OVERHEAD + LEGLOOP_MAX_PAYLOAD) + 2];
static uint8_t back[PROTO_OVERHEAD + LEGLOOP_MAX_PAYLOAD + 2];
static size_t out_len, back_n;

static void put(uint8_t byte)
{
    CHECK(out_len < sizeof out);
    out[out_len++] = byte;
}

static void check_response(const uint8_t *req_frame, size_t req_n, const uint8_t *r, uint32_t n)
{
    const uint8_t t = req_frame[1];
    uint32_t len, k;
    CHECK(n >= PROTO_OVERHEAD && n <= PROTO_OVERHEAD + LEGLOOP_MAX_PAYLOAD);
    len = proto_get16(r + 4);
    CHECK(len == n - PROTO_OVERHEAD);
    CHECK(r[0] == PROTO_VERSION);
    CHECK(proto_get16(r + 2) == proto_get16(req_frame + 2));
    CHECK(crc16_bitwise(r, n - 2u) == proto_get16(r + n - 2u));
    if (r[1] == MSG_ERROR) {
        CHECK(len >= 2u && len <= 66u);
        CHECK(r[PROTO_HEADER + 1] == t);
        CHECK(r[PROTO_HEADER] >= ERR_UNKNOWN_TYPE && r[PROTO_HEADER] <= ERR_INTERNAL);
    } else {
        CHECK(r[1] == (t | MSG_RESPONSE));
        CHECK(t >= MSG_HELLO && t <= MSG_SET_GOVERNOR);
    }
    if (r[1] == (MSG_STEP | MSG_RESPONSE)) {
        /* the governor's guarantee: a governed step not flagged OVER_BUDGET fits the budget; the Θ tail only
         * when asked for, and never below the floor */
        const uint16_t flags = proto_get16(r + PROTO_HEADER + 12);
        const uint32_t base = 14u + 4u * board.outputs;
        CHECK(((flags & RESULT_GOVERNED) != 0) == (board.governor != GOVERNOR_OFF));
        if ((flags & RESULT_GOVERNED) && !(flags & RESULT_OVER_BUDGET))
            CHECK(proto_get32(r + PROTO_HEADER) <= board.gov.budget);
        if (board.governor == GOVERNOR_WORST) /* the worst bound bounds every step's cycles, over budget or not */
            CHECK(proto_get32(r + PROTO_HEADER) <= board.gov.priced);
        if ((flags & RESULT_GOVERNED) && (board.governor_options & GOVERNOR_REPORT_THETA)) {
            CHECK(len == base + 4u * board.layers);
            for (k = 0; k < board.layers; k++) {
                CHECK(proto_get16(r + PROTO_HEADER + base + 4u * k) >= board.net.theta_x);
                CHECK(proto_get16(r + PROTO_HEADER + base + 4u * k + 2u) >= board.net.theta_h);
                CHECK(proto_get16(r + PROTO_HEADER + base + 4u * k + 2u) <= EDGEDRNN_THETA_MAX);
                if (board.governor == GOVERNOR_WORST) /* one invocation: one (Θx, Θh) for every layer */
                    CHECK(proto_get32(r + PROTO_HEADER + base + 4u * k) == proto_get32(r + PROTO_HEADER + base));
            }
        } else {
            CHECK(len == base);
        }
    }
    if (r[1] == (MSG_PING | MSG_RESPONSE)) {
        CHECK(len == req_n - PROTO_OVERHEAD);
        CHECK(memcmp(r + PROTO_HEADER, req_frame + PROTO_HEADER, len) == 0);
    }
    /* what app.c sends (proto_cobs_write) decodes, by the textbook, to the same frame */
    out_len = 0;
    proto_cobs_write(r, n, put);
    CHECK(out_len >= 2u && out_len - 1u <= PROTO_COBS_MAX(n) && out[out_len - 1u] == 0);
    for (k = 0; k + 1u < out_len; k++)
        CHECK(out[k] != 0);
    CHECK(textbook_good(out, out_len - 1u, back, &back_n) && back_n == n && memcmp(back, r, n) == 0);
}

/* The harness's own receiver state: the chunk since the last delimiter, and whether it is skipping (§4). */
static int skipping;
static uint32_t expected_refusals; /* good frames of another version (not HELLO) or an unknown type */

static void feed(uint8_t byte)
{
    const uint8_t *resp = NULL;
    uint32_t n;
    proto_stats before = board.stats;
    proto_rx_verdict v = PROTO_RX_NONE; /* what the textbook says this byte completes */
    size_t req_n = 0;
    if (byte != 0) {
        if (!skipping) {
            if (chunk_len == PROTO_RX_CAP) { /* one byte over max_encoded */
                skipping = 1;
                chunk_len = 0;
                v = PROTO_RX_RESYNC;
            } else {
                chunk[chunk_len++] = byte;
            }
        }
    } else if (skipping) {
        skipping = 0;
    } else if (chunk_len > 0) {
        v = textbook_verdict(chunk, chunk_len, req, &req_n);
        chunk_len = 0;
    }
    verdicts[v]++;
    n = proto_feed(&board, byte, &resp); /* the firmware's receive path, counters included */
    CHECK((n != 0) == (v == PROTO_RX_GOOD));
    CHECK(board.stats.frames_rx == before.frames_rx + (v == PROTO_RX_GOOD));
    CHECK(board.stats.truncated == before.truncated + (v == PROTO_RX_TRUNCATED));
    CHECK(board.stats.crc_errors == before.crc_errors + (v == PROTO_RX_CRC));
    CHECK(board.stats.resyncs == before.resyncs + (v == PROTO_RX_RESYNC));
    if (v == PROTO_RX_GOOD) {
        const uint8_t t = req[1];
        const int refused = (req[0] != PROTO_VERSION && t != MSG_HELLO) ||
                            (req[0] == PROTO_VERSION && (t < MSG_HELLO || t > MSG_SET_GOVERNOR));
        expected_refusals += (uint32_t)refused;
        CHECK(board.stats.malformed == before.malformed + (uint32_t)refused);
        check_response(req, req_n, resp, n);
    } else {
        CHECK(board.stats.malformed == before.malformed + (v == PROTO_RX_MALFORMED));
    }
}

static uint8_t body[PROTO_OVERHEAD + LEGLOOP_MAX_PAYLOAD + 300];
static uint8_t wire[PROTO_COBS_MAX(sizeof body) + 1];
static uint8_t image[LEGLOOP_MAX_IMAGE_BYTES];

/* Send the frame body[0..n) (header | payload; the length field is set here) with its CRC, COBS and 0x00. */
static void send_body(size_t n)
{
    size_t m, k;
    proto_put16(body + 4, (uint16_t)(n - PROTO_HEADER));
    proto_put16(body + n, proto_crc16(0xFFFFu, body, n));
    m = proto_cobs_encode(body, n + 2u, wire);
    for (k = 0; k < m; k++)
        feed(wire[k]);
    feed(0);
}

static void send_msg(uint8_t type, uint16_t seq, const uint8_t *payload, size_t n)
{
    body[0] = PROTO_VERSION;
    body[1] = type;
    proto_put16(body + 2, seq);
    memcpy(body + PROTO_HEADER, payload, n);
    send_body(PROTO_HEADER + n);
}

static uint32_t crc32_bitwise(const uint8_t *p, size_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    while (n--) {
        int b;
        crc ^= *p++;
        for (b = 0; b < 8; b++)
            crc = (crc & 1u) ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
    }
    return crc ^ 0xFFFFFFFFu;
}

/* Make a model of the configured size current the way a preloaded board does (proto.h): the image is written to
 * the store, then LOAD_BEGIN and LOAD_END go through the receiver as frames and the board checks the CRC-32.
 * (The seed corpus also uploads a small image in real LOAD_CHUNKs.) Images over 8 KB are not loaded: each
 * LOAD_END hashes the whole image, and the fuzzer would spend its time there. */
static void auto_load(void)
{
    static uint32_t cached_total, cached_crc;
    uint8_t q[8];
    uint32_t total = board.model_bytes, off, x = 0x9E3779B9u;
    if (!board.configured || total == 0 || total > 8192u)
        return;
    if (total != cached_total) {
        for (off = 0; off < total; off++) { /* xorshift32, small weights: the net neither dies nor saturates */
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            image[off] = (uint8_t)(int8_t)((int32_t)(x >> 24) % 48);
        }
        cached_total = total;
        cached_crc = crc32_bitwise(image, total);
    }
    memcpy(store.image, image, total);
    board.preload_bytes = total;
    proto_put32(q, total);
    proto_put32(q + 4, cached_crc);
    send_msg(MSG_LOAD_BEGIN, 0xA000u, q, 8);
    send_msg(MSG_LOAD_END, 0xA002u, q, 0);
    /* the board's nibble-table CRC-32 agrees with the bitwise one: the load succeeded */
    CHECK(board.load == LOAD_DONE && board.model_hash == cached_crc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t i;
    uint32_t auto_loads = 0;
    proto_init(&board, &store, 0x12345678u);
    chunk_len = 0;
    skipping = 0;
    expected_refusals = 0;
    memset(verdicts, 0, sizeof verdicts);
    if (size == 0)
        return 0;
    if ((data[0] & 1u) == 0) {
        for (i = 1; i < size; i++)
            feed(data[i]);
    } else {
        i = 1;
        while (i < size) {
            size_t n = data[i++], len;
            if (n == 0) {
                if (auto_loads++ < 2u)
                    auto_load();
                continue;
            }
            if (n > size - i)
                n = size - i;
            memset(body, 0, PROTO_HEADER);
            memcpy(body, data + i, n);
            i += n;
            if (n < PROTO_HEADER)
                n = PROTO_HEADER;
            /* the header's length field decides the payload size (zero-padded or cut), up to a bit more than the
             * board takes, so the handlers see consistent frames of any size and the resync path is reached */
            len = proto_get16(body + 4);
            if (len > LEGLOOP_MAX_PAYLOAD + 200u)
                len = n - PROTO_HEADER;
            if (PROTO_HEADER + len > n)
                memset(body + n, 0, PROTO_HEADER + len - n);
            send_body(PROTO_HEADER + len);
        }
    }
    /* the counters equal the textbook's verdicts over the whole session */
    CHECK(board.stats.frames_rx == verdicts[PROTO_RX_GOOD]);
    CHECK(board.stats.truncated == verdicts[PROTO_RX_TRUNCATED]);
    CHECK(board.stats.crc_errors == verdicts[PROTO_RX_CRC]);
    CHECK(board.stats.resyncs == verdicts[PROTO_RX_RESYNC]);
    CHECK(board.stats.malformed == verdicts[PROTO_RX_MALFORMED] + expected_refusals);
    return 0;
}
