#ifndef VINSPECT_CPUFEATURES_H
#define VINSPECT_CPUFEATURES_H

/// Writes into `buffer` a space-separated list of the instruction-set extensions that
/// this build was compiled to use and that the running CPU lacks; an empty string when
/// the CPU has all of them. Returns the number of missing extensions.
int vinspect_cpu_missing_features(char *buffer, int capacity);

/// Writes into `buffer` a space-separated list of the extensions this build was
/// compiled to use.
void vinspect_cpu_build_features(char *buffer, int capacity);

#endif
