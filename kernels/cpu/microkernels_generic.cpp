// The portable micro-kernels: 128-bit vectors of GCC's vector extension (SSE2 on any x86-64,
// NEON elsewhere), no FMA assumed. Same tiles as AVX2 with half the width: 16 registers.
// The fallback for CPUs without AVX2, and the variant every other one is tested beside.
#define POLYTASK_MICROKERNEL_LANES 4
#define POLYTASK_MICROKERNEL_NAMESPACE generic
#include "kernels/cpu/microkernels.h"
#include "kernels/cpu/pool_rows.h"
#include "kernels/cpu/batchnorm_channels.h"

namespace polytask::kernels::cpu {

const MicroKernels& generic_micro_kernels() {
  static const MicroKernels kernels{CpuIsa::Generic, 6, 8, 3, 4, 4,
                                    generic::nn_tile<6, 2>, generic::nt_tile<3, 4>,
                                    generic::copy_row, generic::add_row, generic::fma_probe,
                                    {6, 8, generic::gather_tile<6, 2>},
                                    {6, 8, generic::gather_tile<6, 2>},
                                    generic::max_pool_2x2_forward_plane,
                                    generic::max_pool_2x2_backward_plane,
                                    {generic::batchnorm_forward_train_channel<float>,
                                     generic::batchnorm_forward_infer_channel<float>,
                                     generic::batchnorm_backward_channel<float>}};
  return kernels;
}

}  // namespace polytask::kernels::cpu
