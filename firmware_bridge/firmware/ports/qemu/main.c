/*
 * main.c — the QEMU MPS2 port's entry point: set up the UART and SysTick, run the portable main loop.
 *
 *     qemu-system-arm -M mps2-an385 -display none -monitor none -serial pty -kernel legloop-fw.elf
 *
 * (or -M mps2-an500: the same Cortex-M3 binary runs on the Cortex-M7 board). QEMU prints
 * "char device redirected to /dev/pts/N"; a client opens that device at any baud rate.
 */
#include "hal.h"
#include "mps2.h"

int main(void)
{
    board_init();
    return app_run();
}
