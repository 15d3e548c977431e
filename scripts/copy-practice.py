#!/usr/bin/env python3
# copy-practice.py GUTENBERG_DIR BYTES SEED OUT.txt -- documents for the copy
# curriculum of scripts/train-models.sh (docs/MODEL.md): text whose later part
# can only be predicted by repeating an earlier one, in the <doc> form dsrn
# train reads (one document each): random words from the 3,000 commonest of
# the first 60 books, then again (all or a prefix); made-up names and codes
# in sentences of the books, said again; sentences of the books, some said
# again; lists; code identifiers. Drawn from the training books only.
import random, re, glob, collections, sys
if len(sys.argv) != 5:
    sys.exit('usage: copy-practice.py GUTENBERG_DIR BYTES SEED OUT.txt')
random.seed(int(sys.argv[3]))
target = int(sys.argv[2])
files = sorted(glob.glob(sys.argv[1] + '/*.txt'))
cnt = collections.Counter(); sents = []
for f in files[:60]:
    t = open(f, encoding='utf-8', errors='replace').read()
    t = t[len(t)//10: -len(t)//10]
    cnt.update(w for w in re.findall(r"[a-z]+", t))
    for s in re.split(r'(?<=[.!?])\s+', re.sub(r'\s+', ' ', t)):
        if 30 <= len(s) <= 160: sents.append(s)
common = [w for w, _ in cnt.most_common(3000)]
syl = ['ka','lo','zor','bla','qu','en','strup','ta','mi','vex','or','dan','pel','ri','gon','sha','tu','wick','mar','bel','nox','ith','ul','dra']
def name(): return ''.join(random.choice(syl) for _ in range(random.randint(2, 4))).capitalize()
def code(): return '-'.join(random.choice(common) for _ in range(random.randint(1, 3))) + str(random.randint(1, 9999))
bridges = [' ', ' Once more: ', ' Again: ', '\n', ' I repeat: ', '. ', ', and then ', '\n\n', ' (', ' -- ']
def words(n): return ' '.join(random.choice(common) for _ in range(n))
def doc():
    k = random.random()
    if k < 0.3:   # random words, then again (whole or a prefix)
        a = words(random.randint(6, 30))
        b = a if random.random() < 0.5 else ' '.join(a.split()[:random.randint(3, len(a.split()))])
        return a + random.choice(bridges) + b
    if k < 0.5:   # made-up names and codes in natural sentences, said again later
        n1, n2, c = name() + ' ' + name(), name(), code()
        s = [random.choice(sents) for _ in range(random.randint(1, 3))]
        return (f"My name is {n1} and I live in {n2}. " + ' '.join(s[:1]) + f" The code is {c}. " +
                ' '.join(s[1:]) + f" Remember: {n1} from {n2}, code {c}.")
    if k < 0.75:  # natural sentences, then one or more of them again
        s = [random.choice(sents) for _ in range(random.randint(2, 4))]
        r = random.sample(s, random.randint(1, len(s)))
        return ' '.join(s) + random.choice(bridges) + ' '.join(r)
    if k < 0.9:   # lists
        xs = [random.choice(common) if random.random() < 0.6 else name() for _ in range(random.randint(4, 10))]
        return ', '.join(xs) + '.' + random.choice(bridges) + ', '.join(xs[:random.randint(2, len(xs))])
    # code identifiers
    f = '_'.join(random.choice(common) for _ in range(random.randint(2, 3)))
    v = random.choice(common) + '_' + random.choice(common)
    return (f"def {f}({v}):\n    return {v} + {random.randint(1,99)}\n\n\nresult = {f}({random.randint(0,999)})\n"
            f"print({f}({v}))\n")
out = open(sys.argv[4], 'w')
size = 0; i = 0
while size < target:
    d = doc(); i += 1
    s = f'<doc id="{i}">\n{d}\n</doc>\n'
    out.write(s); size += len(s)
out.close()
print(i, 'documents,', size, 'bytes', file=sys.stderr)
