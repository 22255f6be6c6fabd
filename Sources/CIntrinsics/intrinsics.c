// The target's functions are inline in include/intrinsics.h; SwiftPM wants a source file.
#include "intrinsics.h"
