#!/usr/bin/env bash
# Downloads the public data sets polytask reads (MNIST, Fashion-MNIST, CIFAR-10 binary) from
# their usual homes and checks them against the MD5 sums their publishers list, so a damaged or
# substituted file never reaches training. Files stay compressed where the loader reads them
# that way (IDX .gz); the CIFAR-10 tarball is unpacked into cifar-10-batches-bin/.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/fetch-data.sh [--dir ROOT] [--force] [DATASET...]

Downloads data sets into ROOT/<name> (ROOT defaults to ./data) and verifies their checksums.
DATASET is one or more of: mnist, fashion-mnist, cifar-10, all (the default).

  --dir ROOT   where to put the data sets (ROOT/mnist, ROOT/fashion-mnist, ROOT/cifar-10)
  --force      download again even if a verified copy is already there
  -h, --help   show this help

Then, for example:  polytask train --data data/fashion-mnist
Debian users can skip the Fashion-MNIST download: 'apt install dataset-fashion-mnist' puts it in
/usr/share/datasets/fashion-mnist, polytask's default.

Sources (MD5 as published by the data sets' pages and used by torchvision):
  mnist          https://ossci-datasets.s3.amazonaws.com/mnist/ (mirror of yann.lecun.com/exdb/mnist)
  fashion-mnist  http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/
                 (or github.com/zalandoresearch/fashion-mnist, data/fashion/)
  cifar-10       https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz
Without internet access, copy the same files into ROOT/<name> by hand; polytask reads them there.
EOF
}

die() {
  echo "fetch-data: $*" >&2
  exit 1
}

root=./data
force=0
sets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --dir) [[ $# -ge 2 ]] || die "--dir needs a directory (see --help)"; root=$2; shift 2 ;;
    --dir=*) root=${1#--dir=}; shift ;;
    --force) force=1; shift ;;
    mnist | fashion-mnist | cifar-10) sets+=("$1"); shift ;;
    all) sets+=(mnist fashion-mnist cifar-10); shift ;;
    *) echo "fetch-data: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
[[ ${#sets[@]} -gt 0 ]] || sets=(mnist fashion-mnist cifar-10)

if command -v curl >/dev/null; then
  downloader=curl
elif command -v wget >/dev/null; then
  downloader=wget
else
  die "neither curl nor wget is installed; install one (apt install curl) and run again"
fi
command -v md5sum >/dev/null || die "md5sum is missing (coreutils)"

host_of() { local h=${1#*://}; echo "${h%%/*}"; }

# Downloads URL to FILE. Returns 0 on success, 2 when the host cannot be reached (DNS, connect,
# timeout), 1 for any other failure; the tool's own message is kept in download_error, so an
# offline machine gets one line from us rather than one per retry from curl.
download_error=
download() {
  local url=$1 file=$2 rc=0
  if [[ $downloader == curl ]]; then
    download_error=$(curl --fail --location --silent --show-error --connect-timeout 15 \
      --retry 2 --output "$file" "$url" 2>&1) || rc=$?
    case $rc in 0) return 0 ;; 5 | 6 | 7 | 28 | 35) return 2 ;; *) return 1 ;; esac
  else
    download_error=$(wget --quiet --timeout=15 --tries=2 --output-document="$file" "$url" 2>&1) ||
      rc=$?
    case $rc in 0) return 0 ;; 4) return 2 ;; *) return 1 ;; esac
  fi
}

verified() { [[ -f $1 ]] && [[ $(md5sum "$1" | cut -d' ' -f1) == "$2" ]]; }

# fetch DIR NAME MD5 BASE_URL...: the file NAME into DIR, from the first base URL that answers.
fetch() {
  local dir=$1 name=$2 md5=$3
  shift 3
  local target=$dir/$name
  if [[ $force == 0 ]] && verified "$target" "$md5"; then
    echo "  $name: already there, checksum ok"
    return
  fi
  local part=$target.part unreachable=() base rc
  for base in "$@"; do
    rc=0
    download "$base$name" "$part" || rc=$?
    if [[ $rc == 0 ]]; then
      local got
      got=$(md5sum "$part" | cut -d' ' -f1)
      if [[ $got != "$md5" ]]; then
        rm -f "$part"
        die "$base$name: checksum mismatch: MD5 $got, expected $md5 (damaged or changed upstream)"
      fi
      mv "$part" "$target"
      echo "  $name: downloaded from $(host_of "$base"), checksum ok"
      return
    fi
    rm -f "$part"
    [[ $rc == 2 ]] || die "download of $base$name failed: ${download_error:-$downloader exit code $rc}"
    unreachable+=("$(host_of "$base")")
  done
  local hosts
  hosts=$(printf '%s or ' "${unreachable[@]}")
  die "cannot reach ${hosts% or }: no internet access? Copy the files into $dir by hand" \
    "(sources in --help)"
}

fetch_idx() {
  local dir=$1 sums=$2
  shift 2
  mkdir -p "$dir"
  local line
  while read -r line; do
    fetch "$dir" "${line#* }" "${line%% *}" "$@"
  done <<<"$sums"
}

for set in "${sets[@]}"; do
  dir=$root/$set
  echo "$set -> $dir"
  case $set in
    mnist)
      fetch_idx "$dir" "f68b3c2dcbeaaa9fbdd348bbdeb94873 train-images-idx3-ubyte.gz
d53e105ee54ea40749a09fcbcd1e9432 train-labels-idx1-ubyte.gz
9fb629c4189551a2d022fa330f9573f3 t10k-images-idx3-ubyte.gz
ec29112dd5afa0611ce80d1b7f02629c t10k-labels-idx1-ubyte.gz" \
        https://ossci-datasets.s3.amazonaws.com/mnist/ http://yann.lecun.com/exdb/mnist/
      ;;
    fashion-mnist)
      fetch_idx "$dir" "8d4fb7e6c68d591d4c3dfef9ec88bf0d train-images-idx3-ubyte.gz
25c81989df183df01b3e8a0aad5dffbe train-labels-idx1-ubyte.gz
bef4ecab320f06d8554ea6380940ec79 t10k-images-idx3-ubyte.gz
bb300cfdad3c16e7a12a480ee83cd310 t10k-labels-idx1-ubyte.gz" \
        http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ \
        https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/
      ;;
    cifar-10)
      mkdir -p "$dir"
      fetch "$dir" cifar-10-binary.tar.gz c32a1d4ab5d03f1284b67883e8d87530 \
        https://www.cs.toronto.edu/~kriz/
      if [[ $force == 1 || ! -f $dir/cifar-10-batches-bin/test_batch.bin ]]; then
        tar -xzf "$dir/cifar-10-binary.tar.gz" -C "$dir" ||
          die "$dir/cifar-10-binary.tar.gz: cannot unpack"
        echo "  unpacked into $dir/cifar-10-batches-bin"
      fi
      ;;
  esac
done
echo "done: ${sets[*]} in $root"
