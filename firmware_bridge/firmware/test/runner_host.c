/*
 * runner_host.c — the test runner as a host program: `edgedrnn-runner CASE.bin > RESULTS.bin` (CASE "-" reads
 * stdin). Exit status: the runner's status (0 = every step ran), or 1 when the case cannot be read.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "runner.h"

#ifndef RUNNER_MAX_BLOB
#define RUNNER_MAX_BLOB (16u * 1024u * 1024u)
#endif

static uint8_t g_blob[RUNNER_MAX_BLOB]; /* static like everything else: no malloc in the firmware's tests either */

static void emit_stdout(const uint8_t *data, uint32_t n)
{
    fwrite(data, 1, n, stdout);
}

int main(int argc, char **argv)
{
    FILE *f;
    size_t n;
    uint32_t status;
    if (argc != 2) {
        fprintf(stderr, "usage: %s CASE.bin|-\n", argv[0]);
        return 1;
    }
    f = strcmp(argv[1], "-") == 0 ? stdin : fopen(argv[1], "rb");
    if (f == NULL) {
        perror(argv[1]);
        return 1;
    }
    n = fread(g_blob, 1, sizeof g_blob, f);
    if (ferror(f) || !feof(f)) {
        fprintf(stderr, "%s: read error or larger than %u bytes\n", argv[1], (unsigned)sizeof g_blob);
        return 1;
    }
    if (f != stdin)
        fclose(f);
    status = runner_run(g_blob, (uint32_t)n, emit_stdout);
    if (fflush(stdout) != 0)
        return 1;
    return status > 255u ? 255 : (int)status;
}
