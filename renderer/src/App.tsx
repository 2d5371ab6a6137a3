/** The shell: navigation between the pages listed in routes.ts, hash routing, the main area. */
import { useEffect, useState } from 'react';
import { defaultRoute, routes } from './routes';
import { api, transport } from './api';

function currentRoute(): string {
  const id = location.hash.replace(/^#\/?/, '');
  return routes.some((r) => r.id === id) ? id : defaultRoute;
}

export function App() {
  const [route, setRoute] = useState(currentRoute);
  useEffect(() => {
    const onHash = (): void => setRoute(currentRoute());
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);
  const [crash, setCrash] = useState<string | null>(null);
  useEffect(() => api.on('engine.crashed', (p) => setCrash(p.message)), []);
  const active = routes.find((r) => r.id === route) ?? routes[0];
  const Active = active.component;
  return (
    <div className="shell">
      <a className="skip-link" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById('main')?.focus(); }}>Skip to content</a>
      <nav className="nav" aria-label="Main">
        <div className="brand" aria-hidden="true">Stasis</div>
        <ul>
          {routes.map((r) => (
            <li key={r.id}>
              <a href={`#/${r.id}`} aria-current={r.id === active.id ? 'page' : undefined}>{r.title}</a>
            </li>
          ))}
        </ul>
        <div className="nav-footer">{transport === 'electron' ? 'Desktop app' : 'Browser mode'}</div>
      </nav>
      <main id="main" tabIndex={-1}>
        {crash ? <div className="error-note" role="alert"><p>{crash} It restarts on the next request.</p><button type="button" onClick={() => setCrash(null)}>Dismiss</button></div> : null}
        <Active />
      </main>
    </div>
  );
}
