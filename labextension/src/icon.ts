import { LabIcon } from '@jupyterlab/ui-components';

import paiSvg from '../style/icons/pai.svg';

export const paiIcon = new LabIcon({ name: 'pai-lab:icon', svgstr: paiSvg });
