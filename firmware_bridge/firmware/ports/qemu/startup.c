/*
 * startup.c — bare-metal start-up for the MPS2 boards: vector table, reset handler (.data copy, .bss zero, then
 * main), fault handlers, and the memset/memcpy that GCC may emit calls to even in freestanding code (there is no
 * C library: the build is -ffreestanding -nostdlib, plus libgcc for the compiler's helpers).
 */
#include <stddef.h>
#include <stdint.h>

#include "mps2.h"

int main(void);

/* Symbols of mps2.ld */
extern uint32_t __stack_top;
extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end;

void Reset_Handler(void);
void Default_Handler(void);
void HardFault_Handler(void);
void UART0RX_Handler(void);
void SysTick_Handler(void);

typedef void (*handler_t)(void);

/* Word 0 is the initial stack pointer, then the 15 system exceptions, then the 32 interrupts of the AN385
 * (interrupt 0 = UART0 RX). Kept as a struct so the stack address needs no object-to-function pointer cast. */
struct vector_table {
    uint32_t *stack_top;
    handler_t exceptions[15];
    handler_t irq[32];
};

__attribute__((section(".isr_vector"), used)) const struct vector_table vectors = {
    &__stack_top,
    {
        Reset_Handler,     /* reset */
        Default_Handler,   /* NMI */
        HardFault_Handler, /* hard fault */
        Default_Handler,   /* memory management fault */
        Default_Handler,   /* bus fault */
        Default_Handler,   /* usage fault */
        0, 0, 0, 0,        /* reserved */
        Default_Handler,   /* SVCall */
        Default_Handler,   /* debug monitor */
        0,                 /* reserved */
        Default_Handler,   /* PendSV */
        SysTick_Handler,   /* SysTick */
    },
    {
        UART0RX_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
        Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
        Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
        Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
        Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
        Default_Handler, Default_Handler,
    },
};

void Reset_Handler(void)
{
    const uint32_t *src = &__data_load;
    uint32_t *dst;
    for (dst = &__data_start; dst < &__data_end;)
        *dst++ = *src++;
    for (dst = &__bss_start; dst < &__bss_end;)
        *dst++ = 0;
    semihost_exit(main());
}

/* A fault ends the run with a distinctive status when semihosting is on; otherwise the core sleeps. */
void HardFault_Handler(void)
{
    semihost_puts("legloop firmware: hard fault\n");
    semihost_exit(70);
}

void Default_Handler(void)
{
    semihost_puts("legloop firmware: unexpected exception\n");
    semihost_exit(71);
}

/* Byte loops (the build uses -fno-tree-loop-distribute-patterns, so these are not turned into calls to
 * themselves). */
void *memset(void *s, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);

void *memset(void *s, int c, size_t n)
{
    uint8_t *p = s;
    while (n--)
        *p++ = (uint8_t)c;
    return s;
}

void *memcpy(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}
