/*
 * proto_codec.c — CRCs, COBS and the byte-at-a-time frame receiver of the board protocol (proto_codec.h).
 */
#include "proto_codec.h"

/* ------------------------------------------------------------------------------------------------- CRCs */

/* T16[i] = CRC-16 register after shifting the nibble i (in the top 4 bits) through the polynomial 0x1021. */
static const uint16_t T16[16] = {0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50A5, 0x60C6, 0x70E7,
                                 0x8108, 0x9129, 0xA14A, 0xB16B, 0xC18C, 0xD1AD, 0xE1CE, 0xF1EF};

/* T32[i] = reflected CRC-32 register after shifting the nibble i (low 4 bits) through 0xEDB88320. */
static const uint32_t T32[16] = {0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
                                 0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
                                 0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu};

uint16_t proto_crc16(uint16_t crc, const uint8_t *p, size_t n)
{
    const uint8_t *end = p + n;
    while (p != end) {
        uint32_t b = *p++;
        crc = (uint16_t)((uint32_t)(crc << 4) ^ T16[((uint32_t)crc >> 12) ^ (b >> 4)]);
        crc = (uint16_t)((uint32_t)(crc << 4) ^ T16[((uint32_t)crc >> 12) ^ (b & 0xFu)]);
    }
    return crc;
}

uint32_t proto_crc32_update(uint32_t crc, const uint8_t *p, size_t n)
{
    const uint8_t *end = p + n;
    while (p != end) {
        uint32_t b = *p++;
        crc = (crc >> 4) ^ T32[(crc ^ b) & 0xFu];
        crc = (crc >> 4) ^ T32[(crc ^ (b >> 4)) & 0xFu];
    }
    return crc;
}

uint32_t proto_crc32(const uint8_t *p, size_t n)
{
    return proto_crc32_update(0xFFFFFFFFu, p, n) ^ 0xFFFFFFFFu;
}

/* ------------------------------------------------------------------------------------------------- COBS */

size_t proto_cobs_decode_inplace(uint8_t *buf, size_t m, int *complete)
{
    size_t i = 0, o = 0;
    *complete = 1;
    while (i < m) {
        uint32_t code = buf[i++];
        uint32_t k;
        for (k = 1; k < code; k++) {
            if (i >= m) {
                *complete = 0;
                return o;
            }
            buf[o++] = buf[i++]; /* o < i always: each block's code byte is dropped */
        }
        if (code != 0xFFu && i < m)
            buf[o++] = 0;
    }
    return o;
}

/* Blocks end at each zero (the code stands for it) or after 254 non-zero bytes (code 0xFF, no zero). */
size_t proto_cobs_encode(const uint8_t *in, size_t n, uint8_t *out)
{
    size_t i = 0, o = 0;
    for (;;) {
        size_t run = 0, k;
        while (i + run < n && in[i + run] != 0 && run < 254u)
            run++;
        out[o++] = (uint8_t)(run + 1u);
        for (k = 0; k < run; k++)
            out[o++] = in[i + k];
        i += run;
        if (i == n)
            return o; /* also right after a full 254-byte run: canonical, no trailing 0x01 */
        if (run < 254u && ++i == n) { /* consume the zero; data that ends with a zero ends with an empty block */
            out[o++] = 1u;
            return o;
        }
    }
}

void proto_cobs_write(const uint8_t *in, size_t n, void (*put)(uint8_t byte))
{
    size_t i = 0;
    for (;;) {
        size_t run = 0, k;
        while (i + run < n && in[i + run] != 0 && run < 254u)
            run++;
        put((uint8_t)(run + 1u));
        for (k = 0; k < run; k++)
            put(in[i + k]);
        i += run;
        if (i == n)
            break;
        if (run < 254u && ++i == n) {
            put(1u);
            break;
        }
    }
    put(0u);
}

/* ---------------------------------------------------------------------------------------------- receiver */

void proto_rx_init(proto_rx *rx, uint8_t *buf, uint32_t cap)
{
    rx->buf = buf;
    rx->cap = cap;
    rx->len = 0;
    rx->skipping = 0;
    rx->version = rx->type = 0;
    rx->seq = rx->payload_len = 0;
}

proto_rx_verdict proto_rx_judge(proto_rx *rx, uint32_t m)
{
    uint8_t *f = rx->buf;
    int complete;
    uint32_t n = (uint32_t)proto_cobs_decode_inplace(f, m, &complete);
    uint32_t want;
    /* §4 step 3, in this order: truncated, malformed, CRC, good */
    if (n < PROTO_OVERHEAD)
        return PROTO_RX_TRUNCATED;
    want = PROTO_OVERHEAD + proto_get16(f + 4);
    if (n < want)
        return PROTO_RX_TRUNCATED;
    if (n > want || !complete)
        return PROTO_RX_MALFORMED;
    if (proto_crc16(0xFFFFu, f, n - 2u) != proto_get16(f + n - 2u))
        return PROTO_RX_CRC;
    rx->version = f[0];
    rx->type = f[1];
    rx->seq = proto_get16(f + 2);
    rx->payload_len = proto_get16(f + 4);
    return PROTO_RX_GOOD;
}

proto_rx_verdict proto_rx_feed(proto_rx *rx, uint8_t byte)
{
    uint32_t m;
    if (byte != 0) {
        if (rx->skipping)
            return PROTO_RX_NONE;
        if (rx->len == rx->cap) { /* step 1: one more byte would exceed max_encoded */
            rx->len = 0;
            rx->skipping = 1;
            return PROTO_RX_RESYNC;
        }
        rx->buf[rx->len++] = byte;
        return PROTO_RX_NONE;
    }
    if (rx->skipping) { /* the delimiter that ends a resync */
        rx->skipping = 0;
        return PROTO_RX_NONE;
    }
    m = rx->len;
    rx->len = 0;
    if (m == 0)
        return PROTO_RX_NONE; /* step 2: extra delimiters are allowed */
    return proto_rx_judge(rx, m);
}
