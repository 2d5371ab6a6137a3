/**
 * The shell's pages, in navigation order. A new page: a component in pages/<Page>.tsx and one entry
 * here; the shell (App.tsx) builds the navigation and the hash routes (#/<id>) from this list.
 */
import type { ComponentType } from 'react';
import { ProcessesPage } from './pages/Processes';
import { CheckpointsPage } from './pages/Checkpoints';
import { SchedulesPage } from './pages/Schedules';
import { ReceivePage } from './pages/Receive';
import { StatusPage } from './pages/Status';

export interface Route {
  /** URL fragment: #/<id>. */
  id: string;
  /** Navigation label and page heading. */
  title: string;
  component: ComponentType;
}

export const routes: Route[] = [
  { id: 'processes', title: 'Processes', component: ProcessesPage },
  { id: 'checkpoints', title: 'Checkpoints', component: CheckpointsPage },
  { id: 'schedules', title: 'Schedules', component: SchedulesPage },
  { id: 'receive', title: 'Receive', component: ReceivePage },
  { id: 'status', title: 'Settings & Status', component: StatusPage },
];

export const defaultRoute = 'status';
