# A thin index over hack/. Every target runs as root on a fresh machine:
# missing Debian packages are installed, builds are incremental.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := build
.PHONY: build build-demo deps staging kube kube-patched etcd containerd cni-plugins images scheduler cluster-up cluster-down down demo test unit integration e2e bench-proxy bench-scheduler bench-startup coverage clean kind-image-context

build:                ; @hack/build.sh test
build-demo:           ; @hack/build.sh demo
deps:                 ; @hack/install-deps.sh
kube:                 ; @hack/build-kube.sh kube-apiserver kube-controller-manager kubelet
kube-patched: staging ; @hack/build-kube.sh && hack/build-kube-patched.sh kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl pod-networks-scheduler
etcd:                 ; @hack/build-etcd.sh
containerd:           ; @hack/build-containerd.sh
cni-plugins:          ; @hack/build-cni-plugins.sh
images:               ; @hack/build-images.sh
scheduler:            ; @hack/build-scheduler.sh
cluster-up: build-demo ; @hack/cluster.sh up
cluster-down down:    ; @hack/cluster.sh down
demo: build-demo      ; @hack/cluster.sh demo
test: build           ; @hack/test.sh
unit:                 ; @hack/test.sh unit
staging:              ; @hack/build-staging.sh fixtures
integration: build    ; @hack/test.sh integration
e2e: build            ; @hack/test.sh e2e
bench-proxy: build    ; @hack/bench-proxy.sh
bench-scheduler: build ; @hack/bench-scheduler.sh
bench-startup: build ; @hack/bench-startup.sh
coverage: build      ; @hack/coverage.sh
kind-image-context: build-demo ; @hack/kind-image-context.sh
clean: down           ; @rm -rf _output
