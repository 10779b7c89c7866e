/*
 * test_api.c — C-level checks of edgedrnn.h that the vector tests do not reach: argument validation (every
 * error leaves the net usable or explicitly unusable), image sizes, the LUT saturation edges, reset and
 * threshold semantics. Prints one line per failed check and a closing "N passed, N failed" line.
 */
#include <stdio.h>
#include <string.h>

#include "edgedrnn.h"

static int g_pass, g_fail;

#define CHECK(cond)                                                                                                \
    do {                                                                                                           \
        if (cond) {                                                                                                \
            g_pass++;                                                                                              \
        } else {                                                                                                   \
            g_fail++;                                                                                              \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                                                 \
        }                                                                                                          \
    } while (0)

static edgedrnn_t g_net;
static uint8_t g_image[3u * 16u * (1u + 8u + 16u) + 3u * 16u * (1u + 16u + 16u)]; /* 2L-16H, input 5 → 8 */

static void test_image_bytes(void)
{
    CHECK(edgedrnn_image_bytes(2, 5, 16) == 2784u); /* the facts page's example: 1200 + 1584 */
    CHECK(edgedrnn_image_bytes(2, 8, 16) == 2784u);
    CHECK(edgedrnn_image_bytes(1, 1, 8) == 3u * 8u * (1u + 8u + 8u));
    CHECK(edgedrnn_image_bytes(0, 5, 16) == 0u);
    CHECK(edgedrnn_image_bytes(LEGLOOP_MAX_LAYERS + 1, 5, 16) == 0u);
    CHECK(edgedrnn_image_bytes(2, 0, 16) == 0u);
    CHECK(edgedrnn_image_bytes(2, LEGLOOP_MAX_INPUT + 1, 16) == 0u);
    CHECK(edgedrnn_image_bytes(2, 5, 12) == 0u);
    CHECK(edgedrnn_image_bytes(2, 5, 0) == 0u);
    CHECK(edgedrnn_image_bytes(2, 5, LEGLOOP_MAX_HIDDEN + 8) == 0u);
}

static void test_init_errors(void)
{
    CHECK(edgedrnn_init(NULL, g_image, sizeof g_image, 2, 5, 16) == EDGEDRNN_E_NULL);
    CHECK(edgedrnn_init(&g_net, NULL, sizeof g_image, 2, 5, 16) == EDGEDRNN_E_NULL);
    CHECK(edgedrnn_init(&g_net, g_image, sizeof g_image, 0, 5, 16) == EDGEDRNN_E_LAYERS);
    CHECK(edgedrnn_init(&g_net, g_image, sizeof g_image, 2, 0, 16) == EDGEDRNN_E_INPUT);
    CHECK(edgedrnn_init(&g_net, g_image, sizeof g_image, 2, 5, 20) == EDGEDRNN_E_HIDDEN);
    CHECK(edgedrnn_init(&g_net, g_image, sizeof g_image - 1u, 2, 5, 16) == EDGEDRNN_E_IMAGE_SIZE);
    /* a failed init leaves the net unusable rather than half-configured */
    {
        int16_t x[5] = {0};
        CHECK(edgedrnn_step(&g_net, x, 5) == EDGEDRNN_E_NULL);
    }
    CHECK(edgedrnn_init(&g_net, g_image, sizeof g_image, 2, 5, 16) == EDGEDRNN_OK);
    CHECK(g_net.input_padded == 8u && g_net.layer_offset[0] == 0u && g_net.layer_offset[1] == 1200u);
}

static void test_theta_and_output_errors(void)
{
    int32_t out[LEGLOOP_MAX_OUTPUTS];
    int8_t w[16] = {0};
    int32_t b[1] = {0};
    CHECK(edgedrnn_init(&g_net, g_image, sizeof g_image, 2, 5, 16) == EDGEDRNN_OK);
    CHECK(edgedrnn_set_theta(&g_net, 511, 511) == EDGEDRNN_OK);
    CHECK(edgedrnn_set_theta(&g_net, 512, 3) == EDGEDRNN_E_THETA);
    CHECK(edgedrnn_set_theta(&g_net, 3, 512) == EDGEDRNN_E_THETA);
    CHECK(g_net.theta_x == 511u && g_net.theta_h == 511u); /* unchanged on error */
    CHECK(edgedrnn_output(&g_net, out) == EDGEDRNN_E_OUTPUTS); /* no output layer yet */
    CHECK(edgedrnn_set_output(&g_net, w, b, 0) == EDGEDRNN_E_OUTPUTS);
    CHECK(edgedrnn_set_output(&g_net, w, b, LEGLOOP_MAX_OUTPUTS + 1) == EDGEDRNN_E_OUTPUTS);
    CHECK(edgedrnn_set_output(&g_net, NULL, b, 1) == EDGEDRNN_E_NULL);
    CHECK(edgedrnn_set_output(&g_net, w, b, 1) == EDGEDRNN_OK);
    CHECK(edgedrnn_output(&g_net, NULL) == EDGEDRNN_E_NULL);
}

static void test_step_width_and_floor(void)
{
    int16_t x[8] = {0};
    CHECK(edgedrnn_init(&g_net, g_image, sizeof g_image, 2, 5, 16) == EDGEDRNN_OK);
    CHECK(edgedrnn_step(&g_net, x, 4) == EDGEDRNN_E_INPUT);
    CHECK(edgedrnn_step(&g_net, x, 6) == EDGEDRNN_E_INPUT);
    CHECK(edgedrnn_step(&g_net, NULL, 5) == EDGEDRNN_E_NULL);
    /* all-zero weights and inputs: only the bias columns fire at the first step, nothing afterwards */
    CHECK(edgedrnn_step(&g_net, x, 5) == EDGEDRNN_OK);
    CHECK(g_net.stats.fired_columns == 2u && g_net.stats.nonzero_deltas == 0u);
    CHECK(edgedrnn_step(&g_net, x, 8) == EDGEDRNN_OK);
    CHECK(g_net.stats.fired_columns == 0u && g_net.stats.cycles == edgedrnn_floor_cycles(&g_net));
    /* facts page: 2L-16H costs 106 cycles with no deltas */
    CHECK(edgedrnn_floor_cycles(&g_net) == 106u);
    /* reset re-arms the bias column */
    edgedrnn_reset(&g_net);
    CHECK(edgedrnn_step(&g_net, x, 5) == EDGEDRNN_OK);
    CHECK(g_net.stats.fired_columns == 2u);
}

static void test_luts(void)
{
    CHECK(edgedrnn_sig(880) == 256 && edgedrnn_sig(100000) == 256 && edgedrnn_sig(-880) == 0);
    CHECK(edgedrnn_sig(-2147483647 - 1) == 0 && edgedrnn_sig(0) == 128);
    CHECK(edgedrnn_tanh(531) == 256 && edgedrnn_tanh(-531) == -256 && edgedrnn_tanh(0) == 0);
    CHECK(edgedrnn_tanh(2147483647) == 256);
}

int main(void)
{
    memset(g_image, 0, sizeof g_image);
    test_image_bytes();
    test_init_errors();
    test_theta_and_output_errors();
    test_step_width_and_floor();
    test_luts();
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail != 0;
}
