

	py-clienti-1‡Ú≤ÿ"sense1*sense1:4747:
host\elsewhere:4747:
site\Lund:
siteMalm√∂@JECONNREFUSEDZ&https://sense1:4747/engine/healthcheck`à'