/*
 * app.h — what src/app.c exposes to a port's main() besides app_run() (hal.h).
 */
#ifndef LEGLOOP_APP_H
#define LEGLOOP_APP_H

#include <stdint.h>

#include "proto.h"

/* The model image store (proto.h): a port may fill it before app_run() to preload an image. */
extern proto_image_store app_image_store;

/* Mixed into the boot id; a port with some entropy (a process id, a clock, a hardware RNG) sets it first. */
extern uint32_t app_boot_seed;

#endif /* LEGLOOP_APP_H */
