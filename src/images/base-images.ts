/**
 * The base image each framework builds on, and the Python packages each framework needs. Defaults
 * are the official images a user would pull; `baseImage` overrides them (docs/images.md has the
 * table and the reasons).
 */
import type { ModelFramework } from "../managers/container-manager.js";

/** The official PyTorch image with CUDA 12.4 and cuDNN 9 (Python, pip, torch and numpy included). */
const PYTORCH_CUDA = "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime";
const PYTHON_SLIM = "python:3.11-slim";
export const NODE_BASE_IMAGE = "node:20-bookworm-slim";

/** Default base image per framework: `cpu` without `gpu`, `gpu` with it. */
export const DEFAULT_BASE_IMAGES: Readonly<Record<ModelFramework, { cpu: string; gpu: string }>> = {
  // A plain function: slim Python; with a GPU, an image that already holds CUDA and cuDNN.
  python: { cpu: PYTHON_SLIM, gpu: PYTORCH_CUDA },
  // There is no CPU-only official PyTorch image: slim Python plus the CPU wheel (a tenth the size).
  pytorch: { cpu: PYTHON_SLIM, gpu: PYTORCH_CUDA },
  // scikit-learn has no GPU build.
  sklearn: { cpu: PYTHON_SLIM, gpu: PYTHON_SLIM },
  // The xgboost wheel on PyPI is built with CUDA and brings its own libraries (NCCL).
  xgboost: { cpu: PYTHON_SLIM, gpu: PYTHON_SLIM },
  // onnxruntime-gpu needs the CUDA 12 and cuDNN 9 libraries the PyTorch image carries.
  onnx: { cpu: PYTHON_SLIM, gpu: PYTORCH_CUDA },
  tensorflow: { cpu: "tensorflow/tensorflow:2.17.0", gpu: "tensorflow/tensorflow:2.17.0-gpu" },
  node: { cpu: NODE_BASE_IMAGE, gpu: NODE_BASE_IMAGE },
};

export function defaultBaseImage(framework: ModelFramework, gpu = false): string {
  const entry = DEFAULT_BASE_IMAGES[framework];
  return gpu ? entry.gpu : entry.cpu;
}

/**
 * What a Python framework needs installed: the modules to try importing first (the base image may
 * hold them already) and the pip arguments that install them when it does not.
 */
export interface FrameworkPackages {
  imports: string[];
  pip: string[];
}

export function frameworkPackages(framework: ModelFramework, gpu = false): FrameworkPackages | undefined {
  switch (framework) {
    case "python":
    case "node":
      return undefined;
    case "sklearn":
      return { imports: ["sklearn", "joblib"], pip: ["scikit-learn", "joblib"] };
    case "xgboost":
      return { imports: ["xgboost"], pip: ["xgboost"] };
    case "pytorch":
      // The CUDA base holds torch already; on slim Python the CPU wheel avoids 2 GB of CUDA libraries.
      return gpu
        ? { imports: ["torch"], pip: ["torch"] }
        : { imports: ["torch"], pip: ["--index-url", "https://download.pytorch.org/whl/cpu", "torch"] };
    case "onnx":
      return { imports: ["onnxruntime"], pip: [gpu ? "onnxruntime-gpu" : "onnxruntime"] };
    case "tensorflow":
      return { imports: ["tensorflow"], pip: [gpu ? "tensorflow[and-cuda]" : "tensorflow"] };
  }
}
