package main

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// kubeletClient is a CRI client connected the way kubelet's is: grpc-go
// defaults, a 16 MiB receive limit.
type kubeletClient struct {
	runtimeapi.RuntimeServiceClient
	conn *grpc.ClientConn
}

func dialKubeletLike(socket string) (*kubeletClient, error) {
	conn, err := grpc.NewClient("unix://"+socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority("localhost"),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize)))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", socket, err)
	}
	return &kubeletClient{RuntimeServiceClient: runtimeapi.NewRuntimeServiceClient(conn), conn: conn}, nil
}

func (c *kubeletClient) Close() error { return c.conn.Close() }
