// Which instruction set the CPU kernels run on, chosen at run time from the CPU's feature bits
// (CPUID and the OS's XSAVE state), never from a table of CPU models, so a CPU newer than this
// code still gets the widest vectors it has.
//
// The float GEMM and convolution micro-kernels (kernels/cpu/microkernels_*.cpp) exist in one
// variant per CpuIsa; every variant is compiled into every build and the dispatcher picks the
// widest one the CPU and OS support. POLYTASK_CPU_ISA=generic|avx2|avx512 forces a narrower
// one (tests run every variant that way; asking for one the CPU lacks is an error, not a
// silent fallback).
#pragma once

#include <string>

namespace polytask::kernels::cpu {

enum class CpuIsa {
  Generic,  // 128-bit vectors through the compiler's portable vector extension (SSE2 here)
  Avx2,     // 256-bit AVX2 with FMA3
  Avx512,   // 512-bit AVX-512F with FMA
};

// All variants, narrowest first.
inline constexpr CpuIsa kAllCpuIsas[] = {CpuIsa::Generic, CpuIsa::Avx2, CpuIsa::Avx512};

const char* isa_name(CpuIsa isa);

// Whether this CPU and OS can run `isa` (CPUID feature bits plus XGETBV's enabled state).
bool cpu_supports(CpuIsa isa);

// The widest variant this CPU supports.
CpuIsa widest_supported_isa();

// The variant the kernels use: POLYTASK_CPU_ISA if set (read once; throws polytask::Error
// naming the value when it is unknown or the CPU lacks it), else widest_supported_isa().
CpuIsa active_isa();

// One line for logs and benchmarks: "avx512 (AVX-512F, FMA; forced by POLYTASK_CPU_ISA)".
std::string isa_description();

}  // namespace polytask::kernels::cpu
