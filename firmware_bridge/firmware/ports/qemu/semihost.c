/*
 * semihost.c — ARM semihosting calls the QEMU port uses: exit with a status (so tests get an exit code) and a
 * debug string. They trap with `bkpt 0xAB`; QEMU must run with `-semihosting-config enable=on,target=native`,
 * otherwise the trap is a fault and the firmware stops in the fault handler.
 */
#include <stdint.h>

#include "mps2.h"

#define SYS_WRITE0 0x04u
#define SYS_EXIT_EXTENDED 0x20u
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u

static uint32_t semihost_call(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void semihost_puts(const char *s)
{
    (void)semihost_call(SYS_WRITE0, s);
}

void semihost_exit(int code)
{
    /* SYS_EXIT_EXTENDED carries the exit code on 32-bit targets (plain SYS_EXIT only knows success/failure). */
    uint32_t block[2];
    block[0] = ADP_STOPPED_APPLICATION_EXIT;
    block[1] = (uint32_t)code;
    (void)semihost_call(SYS_EXIT_EXTENDED, block);
    for (;;)
        __asm__ volatile("wfi");
}
