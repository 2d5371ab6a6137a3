/** The frame every page sits in: its heading (focused on navigation, for screen readers and keyboards) and body. */
import { useEffect, useRef, type ReactNode } from 'react';

/** The first page after loading keeps the browser's natural focus order (skip link, navigation). */
let firstPageShown = false;

export function Page({ title, actions, children }: { title: string; actions?: ReactNode; children: ReactNode }) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    if (!firstPageShown) { firstPageShown = true; return; }
    heading.current?.focus();
  }, [title]);
  return (
    <section className="page" aria-labelledby="page-title">
      <header className="page-header">
        <h1 id="page-title" ref={heading} tabIndex={-1}>{title}</h1>
        {actions ? <div className="page-actions">{actions}</div> : null}
      </header>
      {children}
    </section>
  );
}
