/*
 * hal_mps2.c — the HAL (src/hal.h) on QEMU's MPS2 boards: CMSDK UART0 with an RX interrupt feeding a ring
 * buffer, `wfi` while there is nothing to read (a polling loop would burn a whole host core for as long as QEMU
 * runs), and SysTick as the tick counter.
 *
 * SysTick counts down 24 bits at the CPU clock; the interrupt on each wrap extends it to 32 bits. Under
 * `qemu -icount shift=0` every instruction advances virtual time by 1 ns, so the counter follows the retired
 * instruction count exactly and repeatably (an instruction-count proxy, not real Cortex-M cycles).
 */
#include <stdint.h>

#include "hal.h"
#include "mps2.h"

const uint32_t hal_tick_hz = MPS2_SYSCLK_HZ;

/* Single producer (the RX interrupt), single consumer (hal_read_byte): no lock needed for the indices. */
#define RX_RING 1024u /* power of two */
static volatile uint8_t rx_ring[RX_RING];
static volatile uint32_t rx_head, rx_tail;
static volatile uint32_t systick_wraps;

void UART0RX_Handler(void);
void SysTick_Handler(void);

void UART0RX_Handler(void)
{
    UART0_INTCLR = UART_INT_RX;
    while (UART0_STATE & UART_STATE_RXFULL) {
        uint8_t b = (uint8_t)UART0_DATA;
        uint32_t head = rx_head;
        if (head - rx_tail < RX_RING) { /* full: drop (QEMU holds bytes back while RX is full anyway) */
            rx_ring[head & (RX_RING - 1u)] = b;
            rx_head = head + 1u;
        }
    }
}

void SysTick_Handler(void)
{
    systick_wraps++;
}

void board_init(void)
{
    UART0_BAUDDIV = 16u; /* QEMU ignores the rate but wants >= 16; a real board: 25 MHz / baud */
    UART0_CTRL = UART_CTRL_TXEN | UART_CTRL_RXEN | UART_CTRL_RXINTEN;
    /* One read of DATA after enabling receive: without it QEMU's first exchange stalled ~1 s (facts/hil.md). */
    (void)UART0_DATA;
    UART0_INTCLR = UART_INT_RX;
    NVIC_ISER0 = 1u << UART0_RX_IRQ;

    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0u;
    SYST_CSR = 0x7u; /* enable, interrupt on wrap, processor clock */
    __asm__ volatile("cpsie i" ::: "memory");
}

int hal_read_byte(void)
{
    for (;;) {
        /* Check and sleep with interrupts masked: an RX interrupt arriving between the check and the wfi would
         * otherwise be serviced first and the wfi would sleep on a non-empty ring. With PRIMASK set a pending
         * interrupt still wakes wfi; it is taken at the cpsie. */
        __asm__ volatile("cpsid i" ::: "memory");
        if (rx_head != rx_tail) {
            uint32_t tail = rx_tail;
            uint8_t b = rx_ring[tail & (RX_RING - 1u)];
            rx_tail = tail + 1u;
            __asm__ volatile("cpsie i" ::: "memory");
            return b;
        }
        __asm__ volatile("wfi" ::: "memory");
        __asm__ volatile("cpsie i\n\tisb" ::: "memory");
    }
}

void hal_write_byte(uint8_t byte)
{
    while (UART0_STATE & UART_STATE_TXFULL) {
        /* only for the few cycles a real UART needs to shift a byte out; QEMU's is never full for long */
    }
    UART0_DATA = byte;
}

/* The counter runs R, R−1, …, 1, 0, R, … (R = 2^24 − 1) and the wrap interrupt pends on 1 → 0, so 0 is the
 * first value of a new period: elapsed ticks in the period are (2^24 − value) mod 2^24 (0 also before the first
 * reload after enabling). A wrap that is pending but not yet counted (interrupts masked, or the read raced the
 * handler) is counted here, and the value re-read after it. */
uint32_t hal_ticks(void)
{
    for (;;) {
        uint32_t hi = systick_wraps;
        uint32_t lo = SYST_CVR;
        uint32_t pending = SCB_ICSR & ICSR_PENDSTSET;
        if (hi != systick_wraps)
            continue; /* the handler ran in between: read again */
        if (pending) {
            hi++;
            lo = SYST_CVR;
        }
        return (hi << 24) + ((0x1000000u - lo) & 0xFFFFFFu);
    }
}
