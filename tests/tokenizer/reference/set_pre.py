"""Copies a vocabulary-only GGUF with tokenizer.ggml.pre replaced: python3 set_pre.py IN OUT PRE"""
import struct,sys
src,dst,pre=sys.argv[1:4]
d=open(src,'rb').read(); p=0
def rd(f):
    global p; v=struct.unpack_from('<'+f,d,p); p+=struct.calcsize(f); return v[0]
magic=rd('I'); ver=rd('I'); nt=rd('Q'); nk=rd('Q'); assert nt==0
out=bytearray(struct.pack('<IIQQ',magic,ver,nt,nk))
S={0:1,1:1,2:2,3:2,4:4,5:4,6:4,7:1,10:8,11:8,12:8}
def skip(t):
    global p
    if t==8: n=rd('Q'); p+=n
    elif t==9:
        et=rd('I'); n=rd('Q')
        for _ in range(n): skip(et)
    else: p+=S[t]
for _ in range(nk):
    ks=p; n=rd('Q'); key=d[p:p+n].decode(); p+=n; t=rd('I'); vs=p; skip(t)
    if key=='tokenizer.ggml.pre':
        v=pre.encode(); out+=d[ks:vs]+struct.pack('<Q',len(v))+v
    else: out+=d[ks:p]
open(dst,'wb').write(out)
