"""Random mixed-script text (CJK, kana, Hangul, Cyrillic, Greek, full-width, emoji,
Latin-1, Arabic, Devanagari, letterlike symbols, whitespace) for tokenizer
comparisons: python3 random_text.py BYTES SEED OUT"""
import random,sys
random.seed(int(sys.argv[2]))
ranges=[(0x20,0x7e,30),(0x4e00,0x9fa5,30),(0x3040,0x30ff,4),(0xac00,0xd7a3,4),(0x400,0x4ff,4),(0x370,0x3ff,3),(0x1f00,0x1fff,3),
        (0xff01,0xff5e,3),(0x2000,0x206f,3),(0x3000,0x303f,3),(0x1f300,0x1f64f,3),(0xa0,0x24f,4),(0x600,0x6ff,2),(0x900,0x97f,2),(0x2100,0x218f,2),(0x10400,0x1044f,1)]
ws=[' ','  ','\n','\n\n','\t',' \n','\r\n','\u3000','\xa0']
words=["the","of","DeepSeek","模型","注意力","专家","推理","latent","Mixture-of-Experts","12345","3.14159","I'm","you'll","WE'RE","深度学习","，","。","！","？","“","”","(",")","{","}","==","->","...","—","½","²","٣"]
out=[]
n=int(sys.argv[1])
size=0
while size<n:
    r=random.random()
    if r<0.5:
        w=random.choice(words)
    elif r<0.8:
        lo,hi,_=random.choices(ranges,weights=[x[2] for x in ranges])[0]
        w=''.join(chr(random.randint(lo,hi)) for _ in range(random.randint(1,12)))
        w=''.join(c for c in w if not (0xd800<=ord(c)<=0xdfff))
    else:
        w=random.choice(ws)
    out.append(w); size+=len(w.encode())
    if random.random()<0.6: out.append(' ')
open(sys.argv[3],'w',encoding='utf8',newline='').write(''.join(out))
