#!/usr/bin/env python3
"""Prints the module import graph of a Rust crate's src/ (code only, comments and unit tests left out)
and its import circles; exits 1 if there is one. Usage: scripts/module_cycles.py [engine/src]"""
import re,os,sys
root=sys.argv[1] if len(sys.argv)>1 else 'engine/src'
def mod_of(path):
    rel=os.path.relpath(path,root)[:-3]
    if rel.endswith('/mod'): rel=rel[:-4]
    return rel.replace('/','::')
edges={}
mods=set()
for d,_,fs in os.walk(root):
    for f in fs:
        if not f.endswith('.rs'): continue
        p=os.path.join(d,f); m=mod_of(p)
        if m in ('lib',): continue
        mods.add(m)
for d,_,fs in os.walk(root):
    for f in fs:
        if not f.endswith('.rs'): continue
        p=os.path.join(d,f); m=mod_of(p)
        if m=='lib': continue
        src=open(p).read()
        # drop #[cfg(test)] mod tests tail
        i=src.find('#[cfg(test)]\nmod tests')
        if i>=0: src=src[:i]
        code='\n'.join(l.split('//')[0] for l in src.splitlines())
        targets=set()
        for t in re.findall(r'crate::((?:\w+::)*\w+)',code):
            parts=t.split('::')
            for k in range(len(parts),0,-1):
                c='::'.join(parts[:k])
                if c in mods: targets.add(c); break
        parent='::'.join(m.split('::')[:-1])
        for t in re.findall(r'super::((?:\w+::)*\w+)',code):
            parts=t.split('::')
            base=parent
            found=None
            for k in range(len(parts),0,-1):
                c=(base+'::' if base else '')+'::'.join(parts[:k])
                if c in mods: found=c; break
            targets.add(found or parent)
        if re.search(r'super::\{',code): targets.add(parent)
        for t in re.findall(r'crate::\{([^}]*)\}',code):
            for name in re.findall(r'(\w+)::',t)+re.findall(r'\b(\w+)\b',t):
                if name in mods: targets.add(name)
        # use of own submodules via `use self::x` / `x::` are children; pub use child::X counts
        for t in re.findall(r'(?:pub(?:\(\w+\))? )?use (\w+)::',code):
            c=m+'::'+t
            if c in mods: targets.add(c)
        targets.discard(m); targets.discard('')
        edges[m]=targets
import itertools
# Tarjan SCC
idx={};low={};st=[];on=set();res=[];n=[0]
def sc(v):
    idx[v]=low[v]=n[0];n[0]+=1;st.append(v);on.add(v)
    for w in edges.get(v,()):
        if w not in idx: sc(w);low[v]=min(low[v],low[w])
        elif w in on: low[v]=min(low[v],idx[w])
    if low[v]==idx[v]:
        comp=[]
        while True:
            w=st.pop();on.discard(w);comp.append(w)
            if w==v:break
        if len(comp)>1: res.append(comp)
sys.setrecursionlimit(10000)
for v in sorted(mods):
    if v not in idx: sc(v)
for k in sorted(edges): print(k,'->',sorted(edges[k]))
print('CYCLES:',res if res else 'none')
sys.exit(1 if res else 0)
