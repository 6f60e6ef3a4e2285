package forward

import (
	"fmt"
	"math"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
)

// frame is one gRPC message as it travels: its payload bytes, in the
// transport's own reference-counted buffers. The proxy never decodes a
// forwarded message.
type frame struct {
	data mem.BufferSlice
}

// free releases what the frame still holds: nothing once a Marshal took it.
func (f *frame) free() {
	if f.data != nil {
		f.data.Free()
		f.data = nil
	}
}

// codec passes frames through without a copy. grpc-go frees the buffers it
// hands to Unmarshal once Unmarshal returns, so Unmarshal takes a reference
// of its own; Marshal's result belongs to the transport, which frees it
// once written, so Marshal hands the frame's reference over and empties the
// frame.
type codec struct{}

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	f, ok := v.(*frame)
	if !ok {
		return nil, fmt.Errorf("forward: cannot marshal %T", v)
	}
	data := f.data
	f.data = nil
	return data, nil
}

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	f, ok := v.(*frame)
	if !ok {
		return fmt.Errorf("forward: cannot unmarshal into %T", v)
	}
	data.Ref()
	// A unary call's client reads once more to see the end of the stream:
	// should the runtime send a second message, the first is not leaked.
	f.free()
	f.data = data
	return nil
}

// Name is empty so that a forced codec adds no content-subtype: the runtime
// gets "application/grpc", as kubelet sends it (see outgoing).
func (codec) Name() string { return "" }

// Call options shared by every forwarded call, boxed once.
var (
	rawCodec = grpc.ForceCodecV2(codec{})
	// The proxy does not limit forwarded answers: the client applies its
	// own limit (and refuses what is above it without harm to its
	// connection).
	unlimitedAnswers = grpc.MaxCallRecvMsgSize(math.MaxInt)
)
