/** Settings & Status: what engine.status reports (version, kernel features, store). */
import type { EngineStatus, Feature } from '../../../shared/contract/engine';
import { Page } from '../Page';
import { ErrorNote } from '../ErrorNote';
import { useCall } from '../useCall';
import { formatBytes } from '../../../shared/format';

const featureNames: [keyof EngineStatus['features'], string][] = [
  ['ptrace', 'ptrace'],
  ['softDirty', 'Soft-dirty tracking'],
  ['pagemapScan', 'PAGEMAP_SCAN'],
  ['uffdWp', 'Userfaultfd write-protect'],
  ['sealedSystemMappings', 'vDSO sealed (mseal)'],
];

function Availability({ feature }: { feature: Feature }) {
  const [cls, text] = feature.available === null ? ['unknown', 'Unknown'] : feature.available ? ['yes', 'Yes'] : ['no', 'No'];
  return <span className={`badge badge-${cls}`}>{text}</span>;
}

function StatusView({ status }: { status: EngineStatus }) {
  return (
    <>
      <dl className="facts" aria-label="Engine">
        <dt>Version</dt><dd>{status.version}</dd>
        <dt>Kernel</dt><dd data-testid="kernel">{status.kernel.release} ({status.kernel.arch})</dd>
        <dt>Engine</dt><dd>Node {status.node}, {status.runtime === 'worker' ? 'worker thread' : 'in-process'}</dd>
        <dt>Store</dt>
        <dd data-testid="store"><code>{status.store.path}</code> — {status.store.exists ? formatBytes(status.store.bytes) : 'not created yet'}</dd>
      </dl>
      <h2>Kernel features</h2>
      <table className="features">
        <thead><tr><th scope="col">Feature</th><th scope="col">Available</th><th scope="col">Detail</th></tr></thead>
        <tbody>
          {featureNames.map(([key, label]) => (
            <tr key={key}>
              <th scope="row">{label}</th>
              <td><Availability feature={status.features[key]} /></td>
              <td>{status.features[key].detail}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

export function StatusPage() {
  const [result, reload] = useCall('engine.status', {});
  return (
    <Page title="Settings & Status" actions={<button type="button" onClick={reload}>Refresh</button>}>
      <div aria-live="polite" aria-busy={result.state === 'loading'}>
        {result.state === 'loading' ? <p>Asking the engine…</p> : null}
        {result.state === 'failed' ? <ErrorNote error={result.error} onRetry={reload} /> : null}
        {result.state === 'done' ? <StatusView status={result.value} /> : null}
      </div>
    </Page>
  );
}
