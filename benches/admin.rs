fn main() {
    println!("admin bench: not written yet");
}
