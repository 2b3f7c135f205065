// Every strategy's per-step functions (one header each) and the switch over them that
// kernels/balance.h's seeds() and combine() run. Each header defines, in namespace
// polytask::kernels::balance,
//   <name>_seeds(settings, state, losses, step, seeds)
//   <name>_combine(settings, state, gram, losses, seeds, step, coefficients)
// with gram the full symmetric T×T matrix and coefficients preset to 1.
#pragma once

#include "kernels/balance/aligned_mtl.h"
#include "kernels/balance/cagrad.h"
#include "kernels/balance/dwa.h"
#include "kernels/balance/dynamic_weights.h"
#include "kernels/balance/famo.h"
#include "kernels/balance/gradnorm.h"
#include "kernels/balance/imtl.h"
#include "kernels/balance/mgda.h"
#include "kernels/balance/nash_mtl.h"
#include "kernels/balance/pcgrad.h"
#include "kernels/balance/rlw.h"
#include "kernels/balance/static_from_norms.h"
#include "kernels/balance/static_weights.h"
#include "kernels/balance/uncertainty.h"
#include "kernels/balance/upgrad.h"

namespace polytask::kernels::balance {

POLYTASK_HOST_DEVICE inline void dispatch_seeds(const Settings& s, State& st, const double* losses,
                                                uint64_t step, double* seeds) {
  switch (s.strategy) {
    case Strategy::Static:
      return static_seeds(s, st, losses, step, seeds);
    case Strategy::Dynamic:
      return dynamic_seeds(s, st, losses, step, seeds);
    case Strategy::Uncertainty:
      return uncertainty_seeds(s, st, losses, step, seeds);
    case Strategy::GradNorm:
      return gradnorm_seeds(s, st, losses, step, seeds);
    case Strategy::Dwa:
      return dwa_seeds(s, st, losses, step, seeds);
    case Strategy::PcGrad:
      return pcgrad_seeds(s, st, losses, step, seeds);
    case Strategy::Mgda:
      return mgda_seeds(s, st, losses, step, seeds);
    case Strategy::UpGrad:
      return upgrad_seeds(s, st, losses, step, seeds);
    case Strategy::Famo:
      return famo_seeds(s, st, losses, step, seeds);
    case Strategy::CaGrad:
      return cagrad_seeds(s, st, losses, step, seeds);
    case Strategy::NashMtl:
      return nash_mtl_seeds(s, st, losses, step, seeds);
    case Strategy::Imtl:
      return imtl_seeds(s, st, losses, step, seeds);
    case Strategy::AlignedMtl:
      return aligned_mtl_seeds(s, st, losses, step, seeds);
    case Strategy::Rlw:
      return rlw_seeds(s, st, losses, step, seeds);
    case Strategy::StaticFromNorms:
      return static_from_norms_seeds(s, st, losses, step, seeds);
  }
}

POLYTASK_HOST_DEVICE inline void dispatch_combine(const Settings& s, State& st, const double* gram,
                                                  const double* losses, const double* seeds,
                                                  uint64_t step, double* c) {
  switch (s.strategy) {
    case Strategy::Static:
      return static_combine(s, st, gram, losses, seeds, step, c);
    case Strategy::Dynamic:
      return dynamic_combine(s, st, gram, losses, seeds, step, c);
    case Strategy::Uncertainty:
      return uncertainty_combine(s, st, gram, losses, seeds, step, c);
    case Strategy::GradNorm:
      return gradnorm_combine(s, st, gram, losses, seeds, step, c);
    case Strategy::Dwa:
      return dwa_combine(s, st, gram, losses, seeds, step, c);
    case Strategy::PcGrad:
      return pcgrad_combine(s, st, gram, losses, seeds, step, c);
    case Strategy::Mgda:
      return mgda_combine(s, st, gram, losses, seeds, step, c);
    case Strategy::UpGrad:
      return upgrad_combine(s, st, gram, losses, seeds, step, c);
    case Strategy::Famo:
      return famo_combine(s, st, gram, losses, seeds, step, c);
    case Strategy::CaGrad:
      return cagrad_combine(s, st, gram, losses, seeds, step, c);
    case Strategy::NashMtl:
      return nash_mtl_combine(s, st, gram, losses, seeds, step, c);
    case Strategy::Imtl:
      return imtl_combine(s, st, gram, losses, seeds, step, c);
    case Strategy::AlignedMtl:
      return aligned_mtl_combine(s, st, gram, losses, seeds, step, c);
    case Strategy::Rlw:
      return rlw_combine(s, st, gram, losses, seeds, step, c);
    case Strategy::StaticFromNorms:
      return static_from_norms_combine(s, st, gram, losses, seeds, step, c);
  }
}

}  // namespace polytask::kernels::balance
