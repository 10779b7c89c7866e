/*
 * runner_qemu.c — the test runner on the emulated MPS2 board. QEMU's generic loader places the test case in the
 * PSRAM before the CPU starts; results leave through UART0 (the port's hal_write_byte), the status through
 * semihosting exit:
 *
 *     qemu-system-arm -M mps2-an385 -display none -monitor none -icount shift=0 \
 *         -semihosting-config enable=on,target=native -serial file:RESULTS.bin \
 *         -device loader,file=CASE.bin,addr=0x200000,force-raw=on -kernel edgedrnn-runner.elf
 */
#include <stdint.h>

#include "hal.h"
#include "mps2.h"
#include "runner.h"

#define CASE_ADDR 0x00200000u /* mps2.ld's CASE region, the same on the AN385 and the AN500 */
#define CASE_MAX (2u * 1024u * 1024u)

static void emit_uart(const uint8_t *data, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; i++)
        hal_write_byte(data[i]);
}

int main(void)
{
    board_init();
    return (int)runner_run((const uint8_t *)(uintptr_t)CASE_ADDR, CASE_MAX, emit_uart);
}
