#include "kernels/cpu/isa.h"

#include <cstdlib>
#include <string_view>

#include "kernels/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define POLYTASK_X86 1
#endif

namespace polytask::kernels::cpu {

namespace {

#if defined(POLYTASK_X86)
struct X86Features {
  bool avx2_fma = false;
  bool avx512f = false;
};

// Feature bits alone are not enough: the OS must also save the wider registers on a context
// switch (XCR0), or the first 512-bit instruction faults.
X86Features read_x86_features() {
  X86Features f;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  const bool osxsave = ecx & (1u << 27), avx = ecx & (1u << 28), fma = ecx & (1u << 12);
  if (!osxsave || !avx) return f;
  unsigned xcr0_lo = 0, xcr0_hi = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  const bool os_ymm = (xcr0_lo & 0x6) == 0x6;     // SSE and AVX state
  const bool os_zmm = (xcr0_lo & 0xe6) == 0xe6;   // plus opmask, ZMM_Hi256, Hi16_ZMM
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  f.avx2_fma = os_ymm && fma && (ebx & (1u << 5));
  f.avx512f = f.avx2_fma && os_zmm && (ebx & (1u << 16));
  return f;
}

const X86Features& x86_features() {
  static const X86Features features = read_x86_features();
  return features;
}
#endif

bool parse_isa(std::string_view text, CpuIsa& isa) {
  for (CpuIsa candidate : kAllCpuIsas) {
    if (text == isa_name(candidate)) {
      isa = candidate;
      return true;
    }
  }
  return false;
}

struct Choice {
  CpuIsa isa;
  bool forced;
};

Choice choose_isa() {
  const char* forced = std::getenv("POLYTASK_CPU_ISA");
  if (forced == nullptr || *forced == '\0') return {widest_supported_isa(), false};
  CpuIsa isa{};
  if (!parse_isa(forced, isa))
    fail("POLYTASK_CPU_ISA=", forced, " is not a CPU kernel variant (generic, avx2, avx512)");
  if (!cpu_supports(isa))
    fail("POLYTASK_CPU_ISA=", forced, " but this CPU does not support it (widest supported: ",
         isa_name(widest_supported_isa()), ")");
  return {isa, true};
}

const Choice& choice() {
  static const Choice c = choose_isa();
  return c;
}

}  // namespace

const char* isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Generic: return "generic";
    case CpuIsa::Avx2: return "avx2";
    case CpuIsa::Avx512: return "avx512";
  }
  return "unknown";
}

bool cpu_supports(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Generic: return true;
#if defined(POLYTASK_X86)
    case CpuIsa::Avx2: return x86_features().avx2_fma;
    case CpuIsa::Avx512: return x86_features().avx512f;
#else
    case CpuIsa::Avx2:
    case CpuIsa::Avx512: return false;
#endif
  }
  return false;
}

CpuIsa widest_supported_isa() {
  CpuIsa widest = CpuIsa::Generic;
  for (CpuIsa isa : kAllCpuIsas)
    if (cpu_supports(isa)) widest = isa;
  return widest;
}

CpuIsa active_isa() { return choice().isa; }

std::string isa_description() {
  const Choice& c = choice();
  std::string text = isa_name(c.isa);
  switch (c.isa) {
    case CpuIsa::Generic: text += " (128-bit portable vectors"; break;
    case CpuIsa::Avx2: text += " (AVX2, FMA"; break;
    case CpuIsa::Avx512: text += " (AVX-512F, FMA"; break;
  }
  text += c.forced ? "; forced by POLYTASK_CPU_ISA)" : ")";
  return text;
}

}  // namespace polytask::kernels::cpu
