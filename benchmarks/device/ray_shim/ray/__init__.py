"""Import shim for the GPU machine only (see benchmarks/device/README.md): RecBole's quick_start
module imports ``ray.tune`` at load time, the benchmark never calls it, and Ray's wheel is too big to
carry there. Never on the path of a normal install, which has the real Ray."""
