# session 50: the ListOps splits in /tmp/splits (training, validation, test, and test-stream examples 0..19,999), W processes
source .data/setup.sh
echo "splits started" > /tmp/splits.log
python -c "
from plait.data.lra import lra_listops_inputs as f
for s in ('train', 'validation', 'test'): f(s, 32, workers=${W:-8}, cache_dir='/tmp/splits')
f('test', 32, workers=${W:-8}, cache_dir='/tmp/splits', n_examples=20000)
" >> /tmp/splits.log 2>&1; echo "splits done $SECONDS s" >> /tmp/splits.log
