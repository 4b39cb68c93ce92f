// libFuzzer's driver, for CheckpointFuzz's --libfuzzer mode. Only a declaration: the function
// is linked in when the fuzz executable is built with -sanitize=fuzzer (scripts/fuzz.sh
// --libfuzzer), and only code compiled with -DCHECKPOINT_LIBFUZZER calls it.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
