#!/usr/bin/env bash
# Registers, shared memory, stack and spills of every CUDA kernel, as ptxas reports them, for the
# architecture the build targets (default sm_90). Needs only nvcc, no GPU.
#
#   bash bench/ptxas_report.sh [ARCH] > bench/results/ptxas-sm90.txt
# bench/gpu_prepare.sh runs it on every preparation of a GPU window, so the committed report
# follows the kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-90}
nvcc=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
# Through ccache when there: it caches the object and replays ptxas' -v report on a hit, so a
# warm report costs seconds (bench/gpu_prepare.sh regenerates it on every preparation).
# CCACHE_DISABLE=1 turns it off as usual.
launcher=()
if command -v ccache >/dev/null; then launcher=(ccache); fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
echo "# ptxas -v, sm_${arch}, $("$nvcc" --version | tail -1)"
echo "# commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%Y-%m-%d)"
total=0
spilling=0
for source in kernels/cuda/*.cu; do
  # "ptxas info    : ..." lines, and the indented stack/spill line under each function.
  # kernel_image.cu names the build's architectures (kernels/CMakeLists.txt passes them).
  if ! compiled=$("${launcher[@]}" "$nvcc" -arch="sm_${arch}" -std=c++20 -O3 -I. -Xptxas -v \
                    -DPOLYTASK_CUDA_ARCHITECTURES="\"${arch}\"" -c "$source" \
                    -o "$scratch/$(basename "$source").o" 2>&1); then
    echo "ptxas_report: compiling $source failed:" >&2
    echo "$compiled" >&2
    exit 1
  fi
  report=$(sed -n -e 's/^ptxas info *: //p' -e 's/^ *\([0-9]* bytes stack frame.*\)/\1/p' <<<"$compiled")
  [[ -z $report ]] && continue
  echo
  echo "## $source"
  # Per kernel: "Compiling entry function '<mangled>'", then "Function properties for ...",
  # "N bytes stack frame, N bytes spill stores, N bytes spill loads", "Used N registers, ...".
  while IFS= read -r line; do
    if [[ $line =~ ^Compiling\ entry\ function\ \'([^\']+)\' ]]; then
      name=$(c++filt <<<"${BASH_REMATCH[1]}" | sed 's/polytask::kernels::cuda::(anonymous namespace):://g')
      printf -- '- %s\n' "${name:0:150}"
      total=$((total + 1))
    elif [[ $line =~ bytes\ stack\ frame ]]; then
      printf '    %s\n' "$line"
      [[ $line == "0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads" ]] ||
        spilling=$((spilling + 1))
    elif [[ $line =~ ^Used ]]; then
      printf '    %s\n' "$line"
    fi
  done <<<"$report"
done
echo
echo "# ${total} kernels; ${spilling} with a stack frame or spills"
