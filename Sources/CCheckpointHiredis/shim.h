// hiredis's pkg-config adds a flag SwiftPM refuses, so the header is included directly.
#include <hiredis/hiredis.h>
