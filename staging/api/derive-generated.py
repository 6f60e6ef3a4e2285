# How 0002-networks-generated.patch's generated.pb.go part was derived:
# run in a copy of k8s.io/api@v0.37.2/core/v1 with 0001 applied, it clones
# the protobuf code of the nearest existing fields (ObjectFieldSelector, two
# strings, for PodNetwork; PodSpec.evictionResponders = 44 for
# PodSpec.networks = 45; NodeStatus.declaredFeatures = 14 for
# NodeStatus.networks = 15). go-to-protobuf needs a protoc and gogo setup
# this machine does not have. The result is checked by core/v1's
# networks_test.go (wire bytes, round trips) and by k8s.io/api's
# compatibility fixtures of every earlier release. Not run by the build.
import re,sys
s=open('generated.pb.go').read()

def func_spans(src, recv_pat):
    # returns list of (start,end) of top-level funcs whose signature matches recv_pat
    out=[]
    for m in re.finditer(r'^func \('+recv_pat+r'\) .*$', src, re.M):
        start=m.start()
        line=src[m.start():src.index('\n',m.start())]
        if line.rstrip().endswith('}'):  # one-liner
            out.append((start, m.start()+len(line)+1)); continue
        end=src.index('\n}\n', start)+3
        out.append((start,end))
    return out

# 1. PodNetwork: clone every ObjectFieldSelector method.
spans=func_spans(s, r'(m|this) \*ObjectFieldSelector')
assert len(spans)==7, len(spans)
for start,end in reversed(spans):
    body=s[start:end]
    clone=body.replace('ObjectFieldSelector','PodNetwork').replace('APIVersion','Name').replace('FieldPath','InterfaceName')
    s=s[:end]+'\n'+clone+s[end:]

def sub_once(old,new):
    global s
    assert s.count(old)==1, old[:80]
    s=s.replace(old,new)

# 2. PodSpec.networks = 45, cloned from evictionResponders = 44.
sub_once('''func (m *PodSpec) MarshalToSizedBuffer(dAtA []byte) (int, error) {
	i := len(dAtA)
	_ = i
	var l int
	_ = l
''','''func (m *PodSpec) MarshalToSizedBuffer(dAtA []byte) (int, error) {
	i := len(dAtA)
	_ = i
	var l int
	_ = l
	if len(m.Networks) > 0 {
		for iNdEx := len(m.Networks) - 1; iNdEx >= 0; iNdEx-- {
			{
				size, err := m.Networks[iNdEx].MarshalToSizedBuffer(dAtA[:i])
				if err != nil {
					return 0, err
				}
				i -= size
				i = encodeVarintGenerated(dAtA, i, uint64(size))
			}
			i--
			dAtA[i] = 0x2
			i--
			dAtA[i] = 0xea
		}
	}
''')
sub_once('''	if len(m.EvictionResponders) > 0 {
		for _, e := range m.EvictionResponders {
			l = e.Size()
			n += 2 + l + sovGenerated(uint64(l))
		}
	}
	return n
}''','''	if len(m.EvictionResponders) > 0 {
		for _, e := range m.EvictionResponders {
			l = e.Size()
			n += 2 + l + sovGenerated(uint64(l))
		}
	}
	if len(m.Networks) > 0 {
		for _, e := range m.Networks {
			l = e.Size()
			n += 2 + l + sovGenerated(uint64(l))
		}
	}
	return n
}''')
i=s.index('		case 44:\n			if wireType != 2 {\n				return fmt.Errorf("proto: wrong wireType = %d for field EvictionResponders"')
j=s.index('			iNdEx = postIndex\n',i)+len('			iNdEx = postIndex\n')
case44=s[i:j]
case45=case44.replace('case 44:','case 45:').replace('EvictionResponders','Networks').replace('EvictionResponder{}','PodNetwork{}')
s=s[:j]+case45+s[j:]
i=s.index('	repeatedStringForEvictionResponders := "[]EvictionResponder{"')
j=s.index('	repeatedStringForEvictionResponders += "}"\n',i)+len('	repeatedStringForEvictionResponders += "}"\n')
blk=s[i:j]
s=s[:j]+blk.replace('EvictionResponders','Networks').replace('EvictionResponder','PodNetwork')+s[j:]
sub_once('''		`EvictionResponders:` + repeatedStringForEvictionResponders + `,`,
''','''		`EvictionResponders:` + repeatedStringForEvictionResponders + `,`,
		`Networks:` + repeatedStringForNetworks + `,`,
''')

# 3. NodeStatus.networks = 15, cloned from declaredFeatures = 14.
sub_once('''	if len(m.DeclaredFeatures) > 0 {
		for iNdEx := len(m.DeclaredFeatures) - 1; iNdEx >= 0; iNdEx-- {''','''	if len(m.Networks) > 0 {
		for iNdEx := len(m.Networks) - 1; iNdEx >= 0; iNdEx-- {
			i -= len(m.Networks[iNdEx])
			copy(dAtA[i:], m.Networks[iNdEx])
			i = encodeVarintGenerated(dAtA, i, uint64(len(m.Networks[iNdEx])))
			i--
			dAtA[i] = 0x7a
		}
	}
	if len(m.DeclaredFeatures) > 0 {
		for iNdEx := len(m.DeclaredFeatures) - 1; iNdEx >= 0; iNdEx-- {''')
i=s.index('func (m *NodeStatus) Size() (n int) {')
j=s.index('\treturn n\n}',i)
sizeblk=s[i:j]
k=sizeblk.index('\tif len(m.DeclaredFeatures) > 0 {')
decl=sizeblk[k:]
s=s[:j]+decl.replace('DeclaredFeatures','Networks')+s[j:]
i=s.index('func (m *NodeStatus) Unmarshal(dAtA []byte) error {')
i=s.index('		case 14:\n',i)
j=s.index('			iNdEx = postIndex\n',i)+len('			iNdEx = postIndex\n')
c14=s[i:j]
assert 'DeclaredFeatures' in c14
s=s[:j]+c14.replace('case 14:','case 15:').replace('DeclaredFeatures','Networks')+s[j:]
sub_once('''		`DeclaredFeatures:` + fmt.Sprintf("%v", this.DeclaredFeatures) + `,`,
''','''		`DeclaredFeatures:` + fmt.Sprintf("%v", this.DeclaredFeatures) + `,`,
		`Networks:` + fmt.Sprintf("%v", this.Networks) + `,`,
''')
open('generated.pb.go','w').write(s)
