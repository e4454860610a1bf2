pub fn run(_ctx: &super::Context, _args: crate::cli::RevertArgs) -> anyhow::Result<crate::exit::Exit> {
    todo!()
}
