/*
 * app.c — the portable firmware main loop, written only against hal.h: the legloop board protocol
 * (docs/protocol.md). Bytes from hal_read_byte() go to the frame receiver one at a time; a good request is
 * handled at once (a STEP runs the delta-GRU and the output layer, timed with hal_ticks()) and its response is
 * COBS-encoded straight into hal_write_byte(), without an output buffer. Bad frames are counted, never answered.
 *
 * The boot id (INFO, new at every start) is mixed from app_boot_seed (a port may set it before app_run(): the
 * host port passes its pid and clock) and hal_ticks() when the first byte arrives — on a board without an
 * entropy source the host's timing is what differs between two boots.
 */
#include "app.h"
#include "hal.h"
#include "proto.h"

/* The model image store. With LEGLOOP_IMAGE_EXTERN (the MPS2 port) the linker script defines it at a fixed
 * address outside every ELF segment, so start-up does not clear it and a loader can preload it (proto.h). */
#ifdef LEGLOOP_IMAGE_EXTERN
typedef char image_store_fits_the_region[sizeof(proto_image_store) <= LEGLOOP_IMAGE_REGION_BYTES ? 1 : -1];
#else
proto_image_store app_image_store;
#endif

uint32_t app_boot_seed;
static proto_board board;

static void put(uint8_t byte)
{
    hal_write_byte(byte);
}

int app_run(void)
{
    int c;
    const uint8_t *frame;
    uint32_t n;
    proto_init(&board, &app_image_store, 1u);
    c = hal_read_byte();
    board.boot_id = proto_mix32(app_boot_seed ^ proto_mix32(hal_ticks()));
    if (board.boot_id == 0)
        board.boot_id = 1u;
    for (; c >= 0; c = hal_read_byte()) {
        n = proto_feed(&board, (uint8_t)c, &frame);
        if (n)
            proto_cobs_write(frame, n, put);
    }
    return 0;
}
